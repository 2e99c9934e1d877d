"""the care loop: referrals, result files, treatment entries, patient accounts

Revision ID: 0f2ac07a87a4
Revises: 189d49e12a7c
Create Date: 2026-12-01 18:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from clinicall.db import UTCDateTime

revision: str = '0f2ac07a87a4'
down_revision: str | Sequence[str] | None = '189d49e12a7c'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs (SQLite too): a batch table copy would cascade-delete rows that reference patients.
    op.add_column('patients', sa.Column('referrer_id', sa.Integer(), nullable=True))
    op.add_column('patients', sa.Column('referral_note', sa.Text(), nullable=False, server_default=''))
    op.create_index('ix_patients_referrer_id', 'patients', ['referrer_id'])
    op.create_table(
        'stored_blobs',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'patient_files',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('patient_id', sa.Integer(), sa.ForeignKey('patients.id', ondelete='CASCADE'), nullable=False),
        sa.Column('group', sa.String(16), nullable=False),
        sa.Column('filename', sa.String(200), nullable=False),
        sa.Column('content_type', sa.String(60), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('storage_key', sa.String(200), nullable=False),
        sa.Column('visible_to_patient', sa.Boolean(), nullable=False),
        sa.Column('visible_to_referrer', sa.Boolean(), nullable=False),
        sa.Column('uploaded_by', sa.Integer(), sa.ForeignKey('users.id', ondelete='SET NULL'), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_patient_files_patient_id', 'patient_files', ['patient_id'])
    op.create_table(
        'treatment_entries',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('patient_id', sa.Integer(), sa.ForeignKey('patients.id', ondelete='CASCADE'), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('doctor', sa.String(200), nullable=False),
        sa.Column('technician', sa.String(200), nullable=False),
        sa.Column('progress', sa.Text(), nullable=False),
        sa.Column('orders', sa.Text(), nullable=False),
        sa.Column('revisit_date', sa.Date(), nullable=True),
        sa.Column('visible_to_patient', sa.Boolean(), nullable=False),
        sa.Column('visible_to_referrer', sa.Boolean(), nullable=False),
        sa.Column('author_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='SET NULL'), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_treatment_entries_patient_id', 'treatment_entries', ['patient_id'])
    op.create_index('ix_treatment_entries_revisit_date', 'treatment_entries', ['revisit_date'])
    op.create_table(
        'patient_accounts',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('patient_id', sa.Integer(), sa.ForeignKey('patients.id', ondelete='CASCADE'), nullable=False,
                  unique=True),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE'), nullable=False, unique=True),
        sa.Column('must_change_password', sa.Boolean(), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('patient_accounts')
    op.drop_table('treatment_entries')
    op.drop_table('patient_files')
    op.drop_table('stored_blobs')
    op.drop_index('ix_patients_referrer_id', 'patients')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_column('referral_note')
        batch_op.drop_column('referrer_id')
