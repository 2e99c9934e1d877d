"""calls

Revision ID: f3c420d5f6be
Revises:
Create Date: 2026-11-22 06:31:37.446030
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clinicall.db

revision: str = 'f3c420d5f6be'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('telephony',)
depends_on: str | Sequence[str] | None = 'f0001'


def upgrade() -> None:
    op.create_table('calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('disposition', sa.String(length=12), nullable=True),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('agent_extension', sa.String(length=40), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('phone_id', sa.Integer(), nullable=True),
    sa.Column('number', sa.String(length=40), nullable=True),
    sa.Column('dialed', sa.String(length=40), nullable=True),
    sa.Column('caller_name', sa.String(length=120), nullable=True),
    sa.Column('action_id', sa.String(length=80), nullable=True),
    sa.Column('channel_id', sa.String(length=80), nullable=True),
    sa.Column('dial_string', sa.String(length=120), nullable=True),
    sa.Column('linkedid', sa.String(length=80), nullable=True),
    sa.Column('agent_channel', sa.String(length=120), nullable=True),
    sa.Column('created_at', clinicall.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ringing_at', clinicall.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_at', clinicall.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', clinicall.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration', sa.Integer(), nullable=True),
    sa.Column('billsec', sa.Integer(), nullable=True),
    sa.Column('hangup_code', sa.Integer(), nullable=True),
    sa.Column('hangup_cause', sa.String(length=120), nullable=True),
    sa.Column('originate_reason', sa.String(length=8), nullable=True),
    sa.Column('recording_path', sa.String(length=300), nullable=True),
    sa.Column('hangup_requested', sa.Boolean(), nullable=False),
    sa.Column('updated_at', clinicall.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['users.id'], name=op.f('fk_calls_agent_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    sa.UniqueConstraint('action_id', name=op.f('uq_calls_action_id'))
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_agent_created', ['agent_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_linkedid'), ['linkedid'], unique=False)
        batch_op.create_index('ix_calls_patient_created', ['patient_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_state'))
        batch_op.drop_index('ix_calls_patient_created')
        batch_op.drop_index(batch_op.f('ix_calls_linkedid'))
        batch_op.drop_index(batch_op.f('ix_calls_created_at'))
        batch_op.drop_index('ix_calls_agent_created')
    op.drop_table('calls')
