"""dashboard indexes: every transactions filter answered from an index

Revision ID: 0003_dashboard
Revises: 0002_shop
Create Date: 2026-11-22 03:50:00

The dashboard lists payments newest first by keyset on (created_at, id). InnoDB appends the
primary key to every secondary index, so an index (a, b, created_at) is really
(a, b, created_at, id): equality on a and b, then the keyset range and the ORDER BY are read in
index order and LIMIT 51 stops early. What 0001_core already serves:
  merchant scope + date range/keyset  -> ix_payments_merchant_created (merchant_id, created_at, id)
  merchant + status                   -> ix_payments_merchant_status_created
  merchant + email search (prefix)    -> ix_payments_merchant_email
  merchant + reference search         -> uq_payments_merchant_id (merchant_id, merchant_reference)
  payment id / PSP session search     -> uq_payments_public_id / uq_payments_psp_session_id
  operator (all merchants) + keyset   -> ix_payments_created (created_at, id)
  stuck payments, operator            -> ix_payments_status_updated (status, updated_at)
What was missing is added here.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003_dashboard'
down_revision = '0002_shop'
branch_labels = None
depends_on = None

INDEXES = [
    # merchant + currency, newest first
    ('ix_payments_merchant_currency_created', ['merchant_id', 'currency', 'created_at']),
    # merchant + payment type (SALE / RECC), newest first
    ('ix_payments_merchant_type_created', ['merchant_id', 'payment_type', 'created_at']),
    # merchant + amount range (a range scan, then a small sort of the matches)
    ('ix_payments_merchant_amount', ['merchant_id', 'amount']),
    # overview: a merchant's payments stuck in a non-final status (no change for an hour)
    ('ix_payments_merchant_status_updated', ['merchant_id', 'status', 'updated_at']),
    # operator views across merchants: status, currency, and the two text searches
    ('ix_payments_status_created', ['status', 'created_at']),
    ('ix_payments_currency_created', ['currency', 'created_at']),
    ('ix_payments_merchant_reference', ['merchant_reference']),
    ('ix_payments_customer_email', ['customer_email']),
]


def upgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        for name, columns in INDEXES:
            batch_op.create_index(name, columns, unique=False)


def downgrade():
    # Plain secondary indexes: none of them is the index a foreign key depends on
    # (merchant_id keeps ix_payments_merchant_created), so MariaDB lets them go.
    with op.batch_alter_table('payments', schema=None) as batch_op:
        for name, _ in reversed(INDEXES):
            batch_op.drop_index(name)
