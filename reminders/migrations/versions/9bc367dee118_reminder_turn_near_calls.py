"""turn-near spoken calls (one per ticket)

Revision ID: 9bc367dee118
Revises: d41be7a9c3f2
Create Date: 2026-12-01 21:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clinicall.db

revision: str = '9bc367dee118'
down_revision: str | Sequence[str] | None = 'd41be7a9c3f2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reminder_turn_near_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('ticket_number', sa.String(length=20), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('lang', sa.String(length=5), nullable=False),
    sa.Column('speech', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('skip_reason', sa.String(length=24), nullable=True),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('disposition', sa.String(length=12), nullable=True),
    sa.Column('played', sa.Boolean(), nullable=False),
    sa.Column('note_id', sa.Integer(), nullable=True),
    sa.Column('created_at', clinicall.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', clinicall.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_id'),
    )
    op.create_index('ix_reminder_turn_near_calls_patient_id', 'reminder_turn_near_calls', ['patient_id'])
    op.create_index('ix_reminder_turn_near_calls_state', 'reminder_turn_near_calls', ['state'])
    op.create_index('ix_reminder_turn_near_calls_call_id', 'reminder_turn_near_calls', ['call_id'])


def downgrade() -> None:
    op.drop_table('reminder_turn_near_calls')
