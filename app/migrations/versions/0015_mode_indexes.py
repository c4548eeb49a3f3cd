"""mode indexes: the dashboard's lists filter merchant + mode, their indexes lead with both

Revision ID: 0015_mode_indexes
Revises: 0014_frozen_checkout_request
Create Date: 2026-12-07 10:00:00

The dashboard shows one of Stripe's modes at a time (test or live data), so every list and
figure it reads is `merchant_id = ? AND livemode = ?` and then a status, currency, type, amount
or email, then the keyset on (created_at, id). Each index those reads use gets livemode after
merchant_id (or first, for the operator's lists across merchants), so the equality prefix still
leads straight to the range and the ORDER BY, and LIMIT 51 still stops early. The merchant's
plain list reads 0013's ix_payments_merchant_mode_created (the API's too), which makes
ix_payments_merchant_created (merchant_id, created_at, id) redundant: it goes. ix_payments_created
(created_at, id) stays for reconciliation's look-back across both modes. On a large payments
table this rebuilds eight indexes and adds two: MySQL/MariaDB build them in place, without
blocking writes.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = '0015_mode_indexes'
down_revision = '0014_frozen_checkout_request'
branch_labels = None
depends_on = None

# name: (columns before, columns after) — the same name, livemode added.
PAYMENTS = {
    'ix_payments_merchant_status_created': (
        ['merchant_id', 'status', 'created_at'],
        ['merchant_id', 'livemode', 'status', 'created_at'],
    ),
    'ix_payments_merchant_email': (
        ['merchant_id', 'customer_email'],
        ['merchant_id', 'livemode', 'customer_email'],
    ),
    'ix_payments_merchant_currency_created': (
        ['merchant_id', 'currency', 'created_at'],
        ['merchant_id', 'livemode', 'currency', 'created_at'],
    ),
    'ix_payments_merchant_type_created': (
        ['merchant_id', 'payment_type', 'created_at'],
        ['merchant_id', 'livemode', 'payment_type', 'created_at'],
    ),
    'ix_payments_merchant_amount': (
        ['merchant_id', 'amount'],
        ['merchant_id', 'livemode', 'amount'],
    ),
    'ix_payments_merchant_status_updated': (
        ['merchant_id', 'status', 'updated_at'],
        ['merchant_id', 'livemode', 'status', 'updated_at'],
    ),
    # The operator's lists across merchants.
    'ix_payments_status_created': (['status', 'created_at'], ['livemode', 'status', 'created_at']),
    'ix_payments_currency_created': (
        ['currency', 'created_at'],
        ['livemode', 'currency', 'created_at'],
    ),
}
# Superseded by 0013's ix_payments_merchant_mode_created (merchant_id, livemode, created_at, id).
REDUNDANT = ('ix_payments_merchant_created', ['merchant_id', 'created_at', 'id'])
# The operator's unfiltered list, newest first, of one mode.
NEW_PAYMENTS_INDEX = ('ix_payments_livemode_created', ['livemode', 'created_at', 'id'])
# The subscriptions' foreign key to merchants needs an index that starts with merchant_id at
# every moment (MySQL refuses to drop its last one): the new index comes first, by a new name.
OLD_SUBSCRIPTIONS = ('ix_subscriptions_merchant_created', ['merchant_id', 'created_at', 'id'])
NEW_SUBSCRIPTIONS = (
    'ix_subscriptions_merchant_mode_created',
    ['merchant_id', 'livemode', 'created_at', 'id'],
)


def upgrade():
    # The unique (merchant_id, livemode, merchant_reference) serves the payments' foreign key to
    # merchants meanwhile.
    op.drop_index(REDUNDANT[0], table_name='payments')
    for name, (_, after) in PAYMENTS.items():
        op.drop_index(name, table_name='payments')
        op.create_index(name, 'payments', after)
    op.create_index(NEW_PAYMENTS_INDEX[0], 'payments', NEW_PAYMENTS_INDEX[1])
    op.create_index(NEW_SUBSCRIPTIONS[0], 'subscriptions', NEW_SUBSCRIPTIONS[1])
    op.drop_index(OLD_SUBSCRIPTIONS[0], table_name='subscriptions')


def downgrade():
    op.create_index(OLD_SUBSCRIPTIONS[0], 'subscriptions', OLD_SUBSCRIPTIONS[1])
    op.drop_index(NEW_SUBSCRIPTIONS[0], table_name='subscriptions')
    op.drop_index(NEW_PAYMENTS_INDEX[0], table_name='payments')
    for name, (before, _) in reversed(PAYMENTS.items()):
        op.drop_index(name, table_name='payments')
        op.create_index(name, 'payments', before)
    op.create_index(REDUNDANT[0], 'payments', REDUNDANT[1])
