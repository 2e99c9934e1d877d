"""patients: do-not-call flag, the booking date a reminder call confirmed

Revision ID: a7c3e91d4b20
Revises: 56fb6c5d8443
Create Date: 2026-12-01 18:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a7c3e91d4b20'
down_revision: str | Sequence[str] | None = '56fb6c5d8443'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('patients', sa.Column('do_not_call', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('patients', sa.Column('booking_confirmed_on', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_column('booking_confirmed_on')
        batch_op.drop_column('do_not_call')
