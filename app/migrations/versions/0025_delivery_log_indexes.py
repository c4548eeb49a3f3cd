"""delivery log: an endpoint's deliveries by status, for bulk redelivery (issue 28)

Revision ID: 0025_delivery_log_indexes
Revises: 0024_payment_rollup
Create Date: 2026-12-07 13:50:00

Redelivering every failed delivery of an endpoint in a time window counts them for the
confirmation and then walks them in id order, in batches: (endpoint_id, status, id) serves both
without reading the endpoint's delivered ones. A merchant's log reads notifications through 0021's
(merchant_id, livemode, [event_type,] created_at, id) indexes, an operator's across
merchants (livemode, created_at, id).
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = '0025_delivery_log_indexes'
down_revision = '0024_payment_rollup'
branch_labels = None
depends_on = None


def upgrade():
    # An operator's log across merchants, one mode, newest first.
    op.create_index(
        'ix_notifications_livemode_created', 'notifications', ['livemode', 'created_at', 'id']
    )
    op.create_index(
        'ix_notification_deliveries_endpoint_status',
        'notification_deliveries',
        ['endpoint_id', 'status', 'id'],
    )


def downgrade():
    # The endpoint_id foreign key needs an index leading with it: (endpoint_id, payment_id, id).
    op.drop_index('ix_notification_deliveries_endpoint_status', 'notification_deliveries')
    op.drop_index('ix_notifications_livemode_created', 'notifications')
