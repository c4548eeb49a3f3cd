"""dispute indexes: the API's list by status and the dashboard's every dispute read an index in order

Revision ID: 0020_dispute_indexes
Revises: 0019_list_search
Create Date: 2026-12-07 12:40:00

`GET /api/v1/disputes?status=…` is newest first by (created_at, id) within one status: it gets
its index leading with merchant, mode and status, as 0017's refunds by status do. The
dashboard's every-dispute list pages by id, newest first: (merchant_id, livemode, id). What
needs a response, due soonest first, reads 0016's (merchant_id, livemode, status,
evidence_due_by) one status at a time, which needs nothing new.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = '0020_dispute_indexes'
down_revision = '0019_list_search'
branch_labels = None
depends_on = None

DISPUTES = {
    'ix_disputes_merchant_mode_status_created': [
        'merchant_id',
        'livemode',
        'status',
        'created_at',
        'id',
    ],
    'ix_disputes_merchant_mode_id': ['merchant_id', 'livemode', 'id'],
}


def upgrade():
    for name, columns in DISPUTES.items():
        op.create_index(name, 'disputes', columns)


def downgrade():
    for name in DISPUTES:
        op.drop_index(name, table_name='disputes')
