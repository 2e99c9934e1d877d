"""messages: the text to send kept apart while the shown text has a one-time password masked

Revision ID: b866c42b447f
Revises: ad1b85a30e3b
Create Date: 2026-12-02 00:30:00
"""
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'b866c42b447f'
down_revision: str | Sequence[str] | None = 'ad1b85a30e3b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# crm_bridge.accounts.ONE_TIME_PASSWORD as it was written when this revision was made
OTP = re.compile(r"(?<![0-9A-Za-z])[a-hj-km-np-z2-9]{4}-[a-hj-km-np-z2-9]{4}-[a-hj-km-np-z2-9]{4}(?![0-9A-Za-z])")
MASK = "••••-••••-••••"


def upgrade() -> None:
    op.add_column('messages', sa.Column('send_text', sa.Text(), nullable=True))
    messages = sa.table('messages', sa.column('id', sa.Integer()), sa.column('text', sa.Text()),
                        sa.column('send_text', sa.Text()), sa.column('status', sa.String()))
    bind = op.get_bind()
    rows = bind.execute(sa.select(messages.c.id, messages.c.text, messages.c.status)
                        .where(messages.c.text.like('%-%-%'))).all()
    for row in rows:
        masked = OTP.sub(MASK, row.text)
        if masked != row.text:
            values = {'text': masked, 'send_text': row.text if row.status == 'queued' else None}
            bind.execute(messages.update().where(messages.c.id == row.id).values(**values))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('send_text')
