"""turn_near_optins: the client address of a sign-up without login (its limits count by it)

Revision ID: a42960b576d2
Revises: b866c42b447f
Create Date: 2026-12-02 00:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a42960b576d2'
down_revision: str | Sequence[str] | None = 'b866c42b447f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('turn_near_optins', sa.Column('client_address', sa.String(length=64), nullable=True))
    op.create_index('ix_turn_near_optins_to_created', 'turn_near_optins', ['to_e164', 'created_at'])
    op.create_index('ix_turn_near_optins_created', 'turn_near_optins', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_turn_near_optins_created', table_name='turn_near_optins')
    op.drop_index('ix_turn_near_optins_to_created', table_name='turn_near_optins')
    with op.batch_alter_table('turn_near_optins', schema=None) as batch_op:
        batch_op.drop_column('client_address')
