"""payment rollup: the overview's payment figures per 15-minute bucket, kept by the worker

Revision ID: 0024_payment_rollup
Revises: 0023_merchant_time_zone
Create Date: 2026-12-07 13:45:00

Creates the tables only: filling them from existing payments is `flask reporting rebuild`
(docs/deploy.md), run after the deploy, not inside it. Until it has run, the overview reads
the payments live as before.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0024_payment_rollup'
down_revision = '0023_merchant_time_zone'
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade():
    op.create_table(
        'payment_rollup',
        sa.Column('merchant_id', sa.BigInteger(), nullable=False),
        sa.Column('livemode', sa.Boolean(), nullable=False),
        sa.Column('bucket_start', Timestamp, nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('failure_reason', sa.String(length=24), nullable=False),
        sa.Column('method_type', sa.String(length=32), nullable=False),
        sa.Column('card_brand', sa.String(length=20), nullable=False),
        sa.Column('attempted', sa.Boolean(), nullable=False),
        sa.Column('payments', sa.Integer(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        # The key, clustered: the overview reads a contiguous range of it (merchant, mode, buckets).
        sa.PrimaryKeyConstraint(
            'merchant_id',
            'livemode',
            'bucket_start',
            'currency',
            'status',
            'failure_reason',
            'method_type',
            'card_brand',
            'attempted',
        ),
    )
    op.create_table(
        'rollup_watermarks',
        sa.Column('name', sa.String(length=32), primary_key=True),
        sa.Column('updated_before', Timestamp, nullable=False),
        sa.Column('attempts_through', sa.BigInteger(), nullable=False),
    )


def downgrade():
    op.drop_table('rollup_watermarks')
    op.drop_table('payment_rollup')
