"""calls.linkedid unique: two instances overlapping on the AMI link during a takeover could each create a row
for one call. Rows that already share a Linkedid keep it on the earliest; the later ones (the duplicates a
takeover made) keep every other column and lose the Linkedid, so nothing refers to a missing row

Revision ID: 8926f77a7565
Revises: f68ecf97f44a
Create Date: 2026-12-02 07:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '8926f77a7565'
down_revision: str | Sequence[str] | None = 'f68ecf97f44a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE calls SET linkedid = NULL WHERE linkedid IS NOT NULL AND id > "
                       "(SELECT MIN(c.id) FROM calls c WHERE c.linkedid = calls.linkedid)"))
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_linkedid'))
        batch_op.create_index(batch_op.f('ix_calls_linkedid'), ['linkedid'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_linkedid'))
        batch_op.create_index(batch_op.f('ix_calls_linkedid'), ['linkedid'], unique=False)
