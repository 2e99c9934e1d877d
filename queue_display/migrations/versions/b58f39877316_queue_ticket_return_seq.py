"""queue ticket keeps its own number for the way back

Revision ID: b58f39877316
Revises: 0e9fa506f7e1
Create Date: 2026-12-01 15:55:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'b58f39877316'
down_revision: str | Sequence[str] | None = '0e9fa506f7e1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('queue_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('return_seq', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('queue_tickets', schema=None) as batch_op:
        batch_op.drop_column('return_seq')
