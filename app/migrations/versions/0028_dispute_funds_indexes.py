"""dispute funds indexes: the overview's disputed and reinstated money by the day it moved

Revision ID: 0028_dispute_funds_indexes
Revises: 0027_delivery_endpoint_due
Create Date: 2026-12-07 14:25:00

The overview counts a chargeback when its funds are withdrawn and a won one when they are
reinstated (issue 27): each read through (merchant, mode, that time), not a scan.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = '0028_dispute_funds_indexes'
down_revision = '0027_delivery_endpoint_due'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_disputes_merchant_mode_withdrawn': ['merchant_id', 'livemode', 'funds_withdrawn_at'],
    'ix_disputes_merchant_mode_reinstated': ['merchant_id', 'livemode', 'funds_reinstated_at'],
}


def upgrade():
    for name, columns in INDEXES.items():
        op.create_index(name, 'disputes', columns)


def downgrade():
    for name in INDEXES:
        op.drop_index(name, table_name='disputes')
