"""queue tickets: an index down each waiting line's groups in call order (call-next reads only the head)

Revision ID: be4c502c5052
Revises: b58f39877316
Create Date: 2026-12-02 00:50:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = 'be4c502c5052'
down_revision: str | Sequence[str] | None = 'b58f39877316'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_queue_tickets_line', 'queue_tickets',
                    ['status', 'priority', 'is_returning', 'enqueued_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_queue_tickets_line', table_name='queue_tickets')
