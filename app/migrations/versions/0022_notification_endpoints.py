"""notification endpoints: several per merchant and mode, each with its event types and secret;
one delivery per notification and endpoint (issue 28)

Revision ID: 0022_notification_endpoints
Revises: 0021_notification_events
Create Date: 2026-12-07 12:40:00

A notification stays the event (its `public_id` is the `webhook-id` clients de-duplicate on);
what the pump delivers is now a `notification_deliveries` row per endpoint that receives it,
with its own status, attempts and schedule. Attempts record which delivery they were and what
was sent and answered.

Each merchant's `notify_url` and secret(s) become its first endpoints: one in test mode and one
in live mode, both with that URL, secret and rotation, receiving exactly the types a notify_url
received (payment.succeeded/failed, refund.*, dispute.*). Both modes, because the notify_url
received both modes' notifications, including those of a mode the merchant starts using later;
an endpoint of a mode never used costs nothing and can be deleted. Every notification of such a
merchant gets its delivery to the endpoint of its mode (0021's notifications.livemode), with its status, schedule and
attempts, so pending ones are delivered on and delivered or failed ones keep their history. A
merchant without a notify_url gets no endpoint; its pending notifications (which had nowhere to
go) are failed, as the next attempt would have failed them. Then the merchant-level columns go.

Downgrade: each merchant gets back the URL and secrets of its first remaining endpoint (test
mode first), or a new secret; notifications no endpoint received count as failed.
"""
import base64
import json
import secrets
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0022_notification_endpoints'
down_revision = '0021_notification_events'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql'
)
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql').with_variant(
    mysql.MEDIUMTEXT(), 'mariadb'
)
# What a notify_url received: its endpoints receive exactly these (frozen here, as it was).
LEGACY_EVENT_TYPES = [
    'payment.succeeded',
    'payment.failed',
    'refund.succeeded',
    'refund.failed',
    'dispute.created',
    'dispute.updated',
    'dispute.closed',
]
MIGRATED_DESCRIPTION = "The merchant's notify URL before endpoints"
_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'


def _exact(length: int):
    """A VARCHAR compared byte for byte (0009's collation), as the models' ExactString."""
    dialect = op.get_bind().dialect
    if dialect.name not in ('mysql', 'mariadb'):
        return sa.String(length=length)
    if dialect.is_mariadb:
        collation = 'utf8mb4_nopad_bin'
    elif (dialect.server_version_info or (0,)) >= (8, 0, 17):
        collation = 'utf8mb4_0900_bin'
    else:
        collation = 'utf8mb4_bin'
    return mysql.VARCHAR(length, collation=collation)


def _public_id(prefix: str) -> str:
    return prefix + ''.join(secrets.choice(_ALPHABET) for _ in range(24))


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def upgrade():
    op.create_table('notification_endpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', _exact(40), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('livemode', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('event_types', sa.JSON(), nullable=False),
    sa.Column('signing_secret', sa.String(length=100), nullable=False),
    sa.Column('previous_signing_secret', sa.String(length=100), nullable=True),
    sa.Column('secret_rotated_at', TIMESTAMP, nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('disabled_reason', sa.String(length=200), nullable=True),
    sa.Column('disabled_at', TIMESTAMP, nullable=True),
    sa.Column('deleted_at', TIMESTAMP, nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_notification_endpoints_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_endpoints')),
    sa.UniqueConstraint('public_id', name=op.f('uq_notification_endpoints_public_id'))
    )
    with op.batch_alter_table('notification_endpoints', schema=None) as batch_op:
        batch_op.create_index('ix_notification_endpoints_merchant_mode', ['merchant_id', 'livemode', 'id'], unique=False)

    op.create_table('notification_deliveries',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('notification_id', BIG_ID, nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('payment_id', BIG_ID, nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempt_count', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', TIMESTAMP, nullable=True),
    sa.Column('last_attempt_at', TIMESTAMP, nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('delivered_at', TIMESTAMP, nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['notification_endpoints.id'], name=op.f('fk_notification_deliveries_endpoint_id_notification_endpoints')),
    sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'], name=op.f('fk_notification_deliveries_notification_id_notifications')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_notification_deliveries_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_deliveries'))
    )
    with op.batch_alter_table('notification_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_notification_deliveries_endpoint_payment', ['endpoint_id', 'payment_id', 'id'], unique=False)
        batch_op.create_index('ix_notification_deliveries_notification', ['notification_id'], unique=False)
        batch_op.create_index('ix_notification_deliveries_status_next_attempt', ['status', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('notification_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_id', BIG_ID, nullable=True))
        batch_op.add_column(sa.Column('url', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('request_headers', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('request_body', LONG_TEXT, nullable=True))
        batch_op.add_column(sa.Column('response_headers', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('response_body', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_notification_attempts_delivery_id'), ['delivery_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_notification_attempts_delivery_id_notification_deliveries'), 'notification_deliveries', ['delivery_id'], ['id'])

    _notify_urls_become_endpoints()

    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_column('secret_rotated_at')
        batch_op.drop_column('previous_signing_secret')
        batch_op.drop_column('signing_secret')
        batch_op.drop_column('notify_url')


def _notify_urls_become_endpoints():
    conn = op.get_bind()
    now = _now()
    merchants = conn.execute(sa.text(
        'SELECT id, notify_url, signing_secret, previous_signing_secret, secret_rotated_at'
        ' FROM merchants WHERE notify_url IS NOT NULL'
    )).all()
    insert = sa.text(
        'INSERT INTO notification_endpoints (public_id, merchant_id, livemode, url, description,'
        ' event_types, signing_secret, previous_signing_secret, secret_rotated_at, enabled,'
        ' created_at, updated_at) VALUES (:public_id, :merchant_id, :livemode, :url,'
        ' :description, :event_types, :secret, :previous, :rotated_at, 1, :now, :now)'
    )
    for m in merchants:
        for livemode in (0, 1):
            conn.execute(insert, {
                'public_id': _public_id('we_'),
                'merchant_id': m.id,
                'livemode': livemode,
                'url': m.notify_url,
                'description': MIGRATED_DESCRIPTION,
                'event_types': json.dumps(LEGACY_EVENT_TYPES),
                'secret': m.signing_secret,
                'previous': m.previous_signing_secret,
                'rotated_at': m.secret_rotated_at,
                'now': now,
            })
    # Each notification's delivery to the endpoint of its payment's mode, as it stands.
    conn.execute(sa.text(
        'INSERT INTO notification_deliveries (notification_id, endpoint_id, payment_id, status,'
        ' attempt_count, next_attempt_at, last_attempt_at, last_error, delivered_at,'
        ' created_at, updated_at)'
        ' SELECT n.id, e.id, n.payment_id, n.status, n.attempt_count, n.next_attempt_at,'
        ' n.last_attempt_at, n.last_error, n.delivered_at, n.created_at, n.updated_at'
        ' FROM notifications n'
        ' JOIN notification_endpoints e ON e.merchant_id = n.merchant_id'
        ' AND e.livemode = n.livemode'
        ' ORDER BY n.id'
    ))
    conn.execute(sa.text(
        'UPDATE notification_attempts SET delivery_id = (SELECT MIN(d.id)'
        ' FROM notification_deliveries d'
        ' WHERE d.notification_id = notification_attempts.notification_id)'
    ))
    conn.execute(sa.text(
        "UPDATE notifications SET status = 'failed', next_attempt_at = NULL,"
        " last_error = 'the merchant had no notify_url' WHERE status = 'pending'"
        ' AND NOT EXISTS (SELECT 1 FROM notification_deliveries d'
        ' WHERE d.notification_id = notifications.id)'
    ))


def downgrade():
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify_url', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('signing_secret', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('previous_signing_secret', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('secret_rotated_at', TIMESTAMP, nullable=True))

    conn = op.get_bind()
    first = (
        'SELECT e.{column} FROM notification_endpoints e WHERE e.merchant_id = merchants.id'
        ' AND e.deleted_at IS NULL ORDER BY e.livemode, e.id LIMIT 1'
    )
    conn.execute(sa.text(
        'UPDATE merchants SET '
        + ', '.join(
            f'{column} = ({first.format(column=column)})'
            for column in ('url', 'signing_secret', 'previous_signing_secret', 'secret_rotated_at')
        ).replace('url = (', 'notify_url = (', 1)
    ))
    for (merchant_id,) in conn.execute(
        sa.text('SELECT id FROM merchants WHERE signing_secret IS NULL')
    ).all():
        secret = 'whsec_' + base64.b64encode(secrets.token_bytes(24)).decode()
        conn.execute(
            sa.text('UPDATE merchants SET signing_secret = :secret WHERE id = :id'),
            {'secret': secret, 'id': merchant_id},
        )
    conn.execute(sa.text(
        "UPDATE notifications SET status = 'failed',"
        " last_error = 'no notification endpoint received it' WHERE status = 'unrouted'"
    ))
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.alter_column('signing_secret', existing_type=sa.String(length=100), nullable=False)

    with op.batch_alter_table('notification_attempts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_notification_attempts_delivery_id_notification_deliveries'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_notification_attempts_delivery_id'))
        batch_op.drop_column('response_body')
        batch_op.drop_column('response_headers')
        batch_op.drop_column('request_body')
        batch_op.drop_column('request_headers')
        batch_op.drop_column('url')
        batch_op.drop_column('delivery_id')

    op.drop_table('notification_deliveries')
    op.drop_table('notification_endpoints')
