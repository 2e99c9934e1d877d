"""reminder campaigns, targets, attempts, numbers called per day

Revision ID: d41be7a9c3f2
Revises:
Create Date: 2026-12-01 18:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clinicall.db

revision: str = 'd41be7a9c3f2'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('reminders',)
depends_on: str | Sequence[str] | None = 'f0001'


def upgrade() -> None:
    op.create_table('reminder_campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('about', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', clinicall.db.UTCDateTime(), nullable=False),
    sa.Column('finished_at', clinicall.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'day', 'source'),
    )
    op.create_index('ix_reminder_campaigns_day', 'reminder_campaigns', ['day'])
    op.create_index('ix_reminder_campaigns_state', 'reminder_campaigns', ['state'])
    op.create_table('reminder_targets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('phone_id', sa.Integer(), nullable=True),
    sa.Column('number', sa.String(length=20), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('about', sa.Date(), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('skip_reason', sa.String(length=24), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_at', clinicall.db.UTCDateTime(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('key', sa.String(length=1), nullable=True),
    sa.Column('note_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', clinicall.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['reminder_campaigns.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', 'patient_id'),
    )
    op.create_index('ix_reminder_targets_campaign_id', 'reminder_targets', ['campaign_id'])
    op.create_index('ix_reminder_targets_patient_id', 'reminder_targets', ['patient_id'])
    op.create_index('ix_reminder_targets_call_id', 'reminder_targets', ['call_id'])
    op.create_index('ix_reminder_targets_state_next', 'reminder_targets', ['state', 'next_at'])
    op.create_table('reminder_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('started_at', clinicall.db.UTCDateTime(), nullable=False),
    sa.Column('ended_at', clinicall.db.UTCDateTime(), nullable=True),
    sa.Column('disposition', sa.String(length=12), nullable=True),
    sa.Column('key', sa.String(length=1), nullable=True),
    sa.Column('counted', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['reminder_targets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id'),
    )
    op.create_index('ix_reminder_attempts_target_id', 'reminder_attempts', ['target_id'])
    op.create_table('reminder_number_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['reminder_targets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('day', 'number'),
    )


def downgrade() -> None:
    op.drop_table('reminder_number_days')
    op.drop_table('reminder_attempts')
    op.drop_table('reminder_targets')
    op.drop_table('reminder_campaigns')
