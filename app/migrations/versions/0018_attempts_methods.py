"""attempts and methods: every try to pay, how the shopper paid, why a payment failed (issue 27)

Revision ID: 0018_attempts_methods
Revises: 0017_refund_indexes
Create Date: 2026-12-07 12:30:00

payment_attempts keeps one row per try on the hosted page (declined or succeeded): unique by
the PSP's charge id, or by the event that reported a decline with no charge, so a redelivered
or late event never adds a second row. Payments gain the method the shopper paid with (type,
card brand and last 4 as columns the transactions list filters and searches through indexes
that lead with merchant and mode as 0015's and 0017's do; the full details as JSON),
`failure_reason`, a code the lists filter on, and `shopper_canceled_at`, when the shopper left
the hosted page by its back link (the checkout stays open; closed unpaid, that is the reason).

Existing FAILED payments get their reason from what they recorded: `expired` by the merchant
(the API or the dashboard moved them) is canceled_by_merchant, other expiries are expired, a
failed renewal is declined, and every other PSP code (async payment failed, rejected at
registration) is rejected_by_psp.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0018_attempts_methods'
down_revision = '0017_refund_indexes'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql'
)


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


PAYMENT_COLUMNS = (
    ('failure_reason', sa.String(length=24)),
    ('method_type', sa.String(length=32)),
    ('card_brand', sa.String(length=20)),
    ('card_last4', sa.String(length=4)),
    ('payment_method', sa.JSON()),
    ('shopper_canceled_at', TIMESTAMP),
)
PAYMENT_INDEXES = {
    'ix_payments_merchant_method_created': [
        'merchant_id', 'livemode', 'method_type', 'created_at', 'id'
    ],
    'ix_payments_method_created': ['livemode', 'method_type', 'created_at', 'id'],
    'ix_payments_merchant_brand_created': [
        'merchant_id', 'livemode', 'card_brand', 'created_at', 'id'
    ],
    'ix_payments_merchant_last4_created': [
        'merchant_id', 'livemode', 'card_last4', 'created_at', 'id'
    ],
    'ix_payments_last4_created': ['livemode', 'card_last4', 'created_at', 'id'],
    'ix_payments_merchant_failure_created': [
        'merchant_id', 'livemode', 'failure_reason', 'created_at', 'id'
    ],
    'ix_payments_failure_created': ['livemode', 'failure_reason', 'created_at', 'id'],
}

BACKFILL = """
UPDATE payments SET failure_reason = CASE
    WHEN failure_code = 'expired' AND EXISTS (
        SELECT 1 FROM payment_status_history h
        WHERE h.payment_id = payments.id AND h.to_status = 'FAILED'
          AND h.source IN ('api', 'dashboard')
    ) THEN 'canceled_by_merchant'
    WHEN failure_code = 'expired' THEN 'expired'
    WHEN failure_code = 'renewal_payment_failed' THEN 'declined'
    -- Stripe's own refusals (Radar), or no code: as failure_reasons.default_for decides.
    WHEN failure_code IS NULL OR failure_code IN (
        'fraudulent', 'highest_risk_level', 'elevated_risk_level', 'rule', 'merchant_blacklist'
    ) THEN 'rejected_by_psp'
    ELSE 'declined'
END
WHERE status = 'FAILED'
"""


def upgrade():
    op.create_table('payment_attempts',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('payment_id', BIG_ID, nullable=False),
    sa.Column('attempted_at', TIMESTAMP, nullable=False),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('method_type', sa.String(length=32), nullable=True),
    sa.Column('card_brand', sa.String(length=20), nullable=True),
    sa.Column('card_last4', sa.String(length=4), nullable=True),
    sa.Column('decline_code', sa.String(length=100), nullable=True),
    sa.Column('failure_code', sa.String(length=100), nullable=True),
    sa.Column('failure_message', sa.String(length=500), nullable=True),
    sa.Column('psp_charge_id', _exact(255), nullable=True),
    sa.Column('psp_event_id', _exact(255), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(
        ['payment_id'], ['payments.id'], name=op.f('fk_payment_attempts_payment_id_payments')
    ),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_attempts')),
    sa.UniqueConstraint('psp_charge_id', name=op.f('uq_payment_attempts_psp_charge_id')),
    sa.UniqueConstraint('psp_event_id', name=op.f('uq_payment_attempts_psp_event_id'))
    )
    op.create_index(
        'ix_payment_attempts_payment', 'payment_attempts', ['payment_id', 'attempted_at', 'id']
    )
    # Batches: SQLite (the demo) alters a table by copying it.
    with op.batch_alter_table('payments') as batch:
        for name, type_ in PAYMENT_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.execute(BACKFILL)
    for name, columns in PAYMENT_INDEXES.items():
        op.create_index(name, 'payments', columns)


def downgrade():
    for name in PAYMENT_INDEXES:
        op.drop_index(name, table_name='payments')
    with op.batch_alter_table('payments') as batch:
        for name, _ in reversed(PAYMENT_COLUMNS):
            batch.drop_column(name)
    op.drop_table('payment_attempts')
