"""call journal (call_events) and the projected call columns: origin, talk/ring seconds, E.164 + raw
number, the network's caller name apart, legs

Revision ID: 6734163895e3
Revises: f3c420d5f6be
Create Date: 2026-12-01 15:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clinicall.db

revision: str = '6734163895e3'
down_revision: str | Sequence[str] | None = 'f3c420d5f6be'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('call_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('linkedid', sa.String(length=80), nullable=True),
    sa.Column('at', clinicall.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('received_at', clinicall.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.String(length=16000), nullable=False),
    sa.Column('problem', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_events')),
    sa.UniqueConstraint('key', name=op.f('uq_call_events_key'))
    )
    with op.batch_alter_table('call_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_call_events_linkedid'), ['linkedid'], unique=False)
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number_raw', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('network_name', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('origin', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('talk_seconds', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('ring_seconds', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('legs', sa.String(length=8000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        for name in ('legs', 'ring_seconds', 'talk_seconds', 'origin', 'network_name', 'number_raw'):
            batch_op.drop_column(name)
    with op.batch_alter_table('call_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_events_linkedid'))
        batch_op.drop_index(batch_op.f('ix_call_events_at'))
    op.drop_table('call_events')
