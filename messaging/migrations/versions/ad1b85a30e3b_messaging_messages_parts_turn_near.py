"""messaging: messages, their gateway parts, turn-near opt-ins

Revision ID: ad1b85a30e3b
Revises:
Create Date: 2026-12-01 18:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clinicall.db

revision: str = 'ad1b85a30e3b'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('messaging',)
depends_on: str | Sequence[str] | None = 'f0001'


def upgrade() -> None:
    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', clinicall.db.UTCDateTime(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('to_e164', sa.String(length=20), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=True),
    sa.Column('sent_by', sa.Integer(), nullable=True),
    sa.Column('origin', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('adapter', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', clinicall.db.UTCDateTime(), nullable=False),
    sa.Column('lease_until', clinicall.db.UTCDateTime(), nullable=True),
    sa.Column('gateway_id', sa.String(length=200), nullable=False),
    sa.Column('gateway_reply', sa.Text(), nullable=False),
    sa.Column('sent_at', clinicall.db.UTCDateTime(), nullable=True),
    sa.Column('done_at', clinicall.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['sent_by'], ['users.id'], name=op.f('fk_messages_sent_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages'))
    )
    op.create_index('ix_messages_status_due', 'messages', ['status', 'next_attempt_at'], unique=False)
    op.create_index('ix_messages_patient_created', 'messages', ['patient_id', 'created_at'], unique=False)
    op.create_index(op.f('ix_messages_created_at'), 'messages', ['created_at'], unique=False)
    op.create_table('message_parts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('gateway_id', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('receipt', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_parts_message_id_messages'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_parts'))
    )
    op.create_index(op.f('ix_message_parts_message_id'), 'message_parts', ['message_id'], unique=False)
    op.create_index(op.f('ix_message_parts_gateway_id'), 'message_parts', ['gateway_id'], unique=False)
    op.create_table('turn_near_optins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('to_e164', sa.String(length=20), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('created_at', clinicall.db.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('notified_at', clinicall.db.UTCDateTime(), nullable=True),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_turn_near_optins_created_by_users'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_turn_near_optins')),
    sa.UniqueConstraint('ticket_id', name=op.f('uq_turn_near_optins_ticket_id'))
    )


def downgrade() -> None:
    op.drop_table('turn_near_optins')
    op.drop_index(op.f('ix_message_parts_gateway_id'), table_name='message_parts')
    op.drop_index(op.f('ix_message_parts_message_id'), table_name='message_parts')
    op.drop_table('message_parts')
    op.drop_index(op.f('ix_messages_created_at'), table_name='messages')
    op.drop_index('ix_messages_patient_created', table_name='messages')
    op.drop_index('ix_messages_status_due', table_name='messages')
    op.drop_table('messages')
