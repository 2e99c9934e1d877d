"""referring doctors invited by a one-use link

Revision ID: 56fb6c5d8443
Revises: 0f2ac07a87a4
Create Date: 2026-12-01 19:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from clinicall.db import UTCDateTime

revision: str = '56fb6c5d8443'
down_revision: str | Sequence[str] | None = '0f2ac07a87a4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'referrer_invites',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('token_hash', sa.String(64), nullable=False, unique=True),
        sa.Column('display_name', sa.String(200), nullable=False),
        sa.Column('created_by', sa.Integer(), sa.ForeignKey('users.id', ondelete='SET NULL'), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('used_by', sa.Integer(), sa.ForeignKey('users.id', ondelete='SET NULL'), nullable=True),
    )


def downgrade() -> None:
    op.drop_table('referrer_invites')
