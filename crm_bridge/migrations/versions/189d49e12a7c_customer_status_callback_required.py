"""customer statuses may require a call-back date ("Hẹn gọi lại")

Revision ID: 189d49e12a7c
Revises: 5f6b5f03b020
Create Date: 2026-12-01 16:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '189d49e12a7c'
down_revision: str | Sequence[str] | None = '5f6b5f03b020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite too): a batch table copy would cascade-delete the self-referencing rows.
    op.add_column('customer_statuses', sa.Column('callback_required', sa.Boolean(), nullable=False,
                                                 server_default=sa.false()))
    table = sa.table("customer_statuses", sa.column("label", sa.String), sa.column("parent_id", sa.Integer),
                     sa.column("callback_required", sa.Boolean))
    op.execute(table.update().where(table.c.label == "Hẹn gọi lại", table.c.parent_id.is_(None))
               .values(callback_required=True))


def downgrade() -> None:
    with op.batch_alter_table('customer_statuses', schema=None) as batch_op:
        batch_op.drop_column('callback_required')
