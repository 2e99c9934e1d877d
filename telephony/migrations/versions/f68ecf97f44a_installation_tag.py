"""telephony_installation: this database's tag, part of every ChannelId/ActionID clinicall sends
(`clinicall-<tag>-<call id>`), so that a fresh database never reuses the Linkedids of calls that
Asterisk's CEL still holds from an earlier one. The row is drawn at the first start (a copy of a
migrated but never started database gets its own)

Revision ID: f68ecf97f44a
Revises: 6734163895e3
Create Date: 2026-12-01 19:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f68ecf97f44a'
down_revision: str | Sequence[str] | None = '6734163895e3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('telephony_installation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telephony_installation'))
    )


def downgrade() -> None:
    op.drop_table('telephony_installation')
