"""the PSP create request's expires_at and return URLs frozen on the payment; payments found by
their payment intent

Revision ID: 0014_frozen_checkout_request
Revises: 0013_mode_scoped_keys
Create Date: 2026-12-07 09:30:00

A payment's create request at the PSP was rebuilt from the current PUBLIC_BASE_URL and checkout
TTL on every retry: changing either between a lost answer and its retry sent different
parameters under the same idempotency key, which Stripe refuses (`idempotency_error`). The three
values are now stored with the payment when it is created. Existing payments keep NULL and
their retries compute the values as before.

Refund events name the payment intent, not the session: its index finds the payment of a
refund made outside PayBridge (e.g. in Stripe's dashboard).
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0014_frozen_checkout_request'
down_revision = '0013_mode_scoped_keys'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql'
)


def upgrade():
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('checkout_expires_at', TIMESTAMP, nullable=True))
        batch.add_column(sa.Column('checkout_success_url', sa.String(length=2000), nullable=True))
        batch.add_column(sa.Column('checkout_cancel_url', sa.String(length=2000), nullable=True))
        batch.create_index('ix_payments_psp_payment_intent', ['psp_payment_intent_id'])


def downgrade():
    with op.batch_alter_table('payments') as batch:
        batch.drop_index('ix_payments_psp_payment_intent')
        batch.drop_column('checkout_cancel_url')
        batch.drop_column('checkout_success_url')
        batch.drop_column('checkout_expires_at')
