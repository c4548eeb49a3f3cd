"""notification events: a notification keeps its mode, and the Events API lists them by index

Revision ID: 0021_notification_events
Revises: 0017_refund_indexes
Create Date: 2026-12-07 12:20:00

Every notification is an event a client app can pull through `GET /api/v1/events`, with the
API key's merchant and mode. A notification had its mode only in its payload (since modes) and
through its payment, and MariaDB cannot walk an index in order when the filter is on a joined
table or inside JSON, so a notification keeps its own `livemode`. Existing rows take their
payment's (set by 0012 for rows from before modes), else their payload's `livemode`; a row with
neither (no such writer exists: every notification names its payment) is marked test: a live
key never reads it as real money, and a test key's reader acts on nothing real.

The Events API reads one merchant's mode newest first, by type or not (the `payment.*` prefix
filter is a range on the same index); both indexes end with the keyset (created_at, id), as
0015's and 0017's do. ix_notifications_merchant_created (merchant_id, created_at) is kept: the
dashboard's reads across modes use it.
"""

import json

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0021_notification_events'
down_revision = '0017_refund_indexes'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_notifications_merchant_mode_created': ['merchant_id', 'livemode', 'created_at', 'id'],
    'ix_notifications_merchant_mode_type_created': [
        'merchant_id',
        'livemode',
        'event_type',
        'created_at',
        'id',
    ],
}


def upgrade():
    # Batches: SQLite (the demo) alters a table by copying it.
    with op.batch_alter_table('notifications') as batch:
        batch.add_column(
            sa.Column('livemode', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    bind = op.get_bind()
    bind.execute(
        sa.text(
            'UPDATE notifications SET livemode = '
            '(SELECT payments.livemode FROM payments WHERE payments.id = notifications.payment_id) '
            'WHERE payment_id IS NOT NULL'
        )
    )
    # No payment: the payload says it, when it does (JSON true); else test stays.
    rows = bind.execute(
        sa.text('SELECT id, payload FROM notifications WHERE payment_id IS NULL')
    ).all()
    for row_id, payload in rows:
        livemode = _payload_livemode(payload)
        if livemode:
            bind.execute(
                sa.text('UPDATE notifications SET livemode = :live WHERE id = :id'),
                {'live': True, 'id': row_id},
            )
    for name, columns in INDEXES.items():
        op.create_index(name, 'notifications', columns)


def _payload_livemode(payload) -> bool:
    if isinstance(payload, (str, bytes)):
        try:
            payload = json.loads(payload)
        except ValueError:
            return False
    return isinstance(payload, dict) and payload.get('livemode') is True


def downgrade():
    for name in INDEXES:
        op.drop_index(name, table_name='notifications')
    with op.batch_alter_table('notifications') as batch:
        batch.drop_column('livemode')
