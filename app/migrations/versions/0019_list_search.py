"""list search: emails are kept in lower case and searched by prefix through an index

Revision ID: 0019_list_search
Revises: 0018_attempts_methods
Create Date: 2026-12-07 12:30:00

A customer is an email per merchant and mode (the customer page, the customers list, the
transactions search by the start of an email). Emails compare without case: PayBridge keeps them
in lower case (the model lowers every one it stores), so `=` and `LIKE 'ann%'` mean the same on
MariaDB (whose default collation folds case) and on SQLite (whose `=` does not); the existing
rows are lowered here. ix_payments_merchant_email (merchant_id, livemode, customer_email) gains
(created_at, id): one customer's payments come newest first straight from the index, and the
customers list walks it in email order, covered, grouping as it goes (no temporary table).
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = '0019_list_search'
down_revision = '0018_attempts_methods'
branch_labels = None
depends_on = None

NAME = 'ix_payments_merchant_email'
BEFORE = ['merchant_id', 'livemode', 'customer_email']
AFTER = ['merchant_id', 'livemode', 'customer_email', 'created_at', 'id']


def upgrade():
    # Only the rows that change: MariaDB's default collation would call 'Ann' = 'ann' equal,
    # BINARY compares the bytes (SQLite's <> does already).
    differs = 'BINARY customer_email' if op.get_bind().dialect.name == 'mysql' else 'customer_email'
    op.execute(
        f'UPDATE payments SET customer_email = LOWER(customer_email) '
        f'WHERE customer_email IS NOT NULL AND {differs} <> LOWER(customer_email)'
    )
    op.drop_index(NAME, table_name='payments')
    op.create_index(NAME, 'payments', AFTER)


def downgrade():
    # The emails stay lower case: their original case is not kept anywhere.
    op.drop_index(NAME, table_name='payments')
    op.create_index(NAME, 'payments', BEFORE)
