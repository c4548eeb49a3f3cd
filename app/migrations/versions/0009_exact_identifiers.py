"""identifiers compare exactly: a binary, no-pad collation on MySQL/MariaDB

Revision ID: 0009_exact_identifiers
Revises: 0008_drop_shop
Create Date: 2026-12-07 05:00:00

MySQL/MariaDB's default collations fold case and ignore trailing spaces, so `a-1` and `A-1 `
were one merchant reference, one Idempotency-Key, and a lower-cased payment id found the payment.
Every column that stores an identifier PayBridge looks things up by gets a binary collation
without PAD SPACE (`utf8mb4_bin` alone still ignores trailing spaces): utf8mb4_nopad_bin on
MariaDB, utf8mb4_0900_bin on MySQL 8.0.17+ (utf8mb4_bin on older MySQL, the closest it has).
The models declare the same (app/models/base.py `ExactString`). SQLite compares exactly
already: nothing to do there.

Existing rows stay valid: a binary collation only tells apart values the old one merged, so no
unique key can be violated by the change.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0009_exact_identifiers'
down_revision = '0008_drop_shop'
branch_labels = None
depends_on = None

# (table, column, length, nullable)
COLUMNS = (
    ('payments', 'public_id', 32, False),
    ('payments', 'merchant_reference', 200, False),
    ('payments', 'psp_session_id', 255, True),
    ('payments', 'psp_payment_intent_id', 255, True),
    ('payments', 'psp_subscription_id', 255, True),
    ('payment_status_history', 'psp_event_id', 255, True),
    ('idempotency_keys', 'idempotency_key', 255, False),
    ('payment_conflicts', 'psp_event_id', 255, True),
    ('payment_conflicts', 'psp_session_id', 255, True),
    ('refunds', 'public_id', 32, False),
    ('refunds', 'psp_refund_id', 255, True),
    ('subscriptions', 'public_id', 32, False),
    ('subscriptions', 'psp_subscription_id', 255, False),
    ('subscription_charges', 'psp_invoice_id', 255, False),
    ('subscription_charges', 'attempt', 20, False),
    ('subscription_charges', 'psp_event_id', 255, True),
    ('psp_events', 'event_id', 255, False),
    ('psp_events', 'psp_session_id', 255, True),
    ('notifications', 'public_id', 40, False),
    ('api_keys', 'key_hash', 64, False),
)


def _exact_collation(bind) -> str:
    dialect = bind.dialect
    if dialect.is_mariadb:
        return 'utf8mb4_nopad_bin'
    if (dialect.server_version_info or (0,)) >= (8, 0, 17):
        return 'utf8mb4_0900_bin'
    return 'utf8mb4_bin'


def _retype(collation):
    for table, column, length, nullable in COLUMNS:
        op.alter_column(
            table,
            column,
            existing_type=sa.String(length),
            type_=mysql.VARCHAR(length, charset='utf8mb4', collation=collation),
            existing_nullable=nullable,
        )


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name not in ('mysql', 'mariadb'):
        return
    _retype(_exact_collation(bind))


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name not in ('mysql', 'mariadb'):
        return
    # Back to the table's default collation (as 0001-0005 created them).
    for table, column, length, nullable in COLUMNS:
        op.alter_column(
            table,
            column,
            existing_type=sa.String(length),
            type_=sa.String(length),
            existing_nullable=nullable,
        )
