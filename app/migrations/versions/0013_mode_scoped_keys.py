"""test and live modes apart: merchant references and Idempotency-Keys are unique per mode

Revision ID: 0013_mode_scoped_keys
Revises: 0012_modes
Create Date: 2026-12-07 10:00:00

As on Stripe, a merchant's test and live data never meet: the same merchant_reference may name
a test payment and a live one (a shop that tested order-1001 can sell order-1001 for real), and
a test request never replays, or collides with, a live request's Idempotency-Key. The new unique
keys are created before the old ones are dropped, so merchant_id keeps an index for its foreign
key on MariaDB. The API's list of a key's payments gets an index that starts with the mode. The
downgrade fails while a reference or a key is used in both modes.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0013_mode_scoped_keys'
down_revision = '0012_modes'
branch_labels = None
depends_on = None

# table: (the unique key's last column, its name without the mode, with it)
KEYS = {
    'payments': (
        'merchant_reference',
        'uq_payments_merchant_id_merchant_reference',
        'uq_payments_merchant_id_livemode_merchant_reference',
    ),
    'idempotency_keys': (
        'idempotency_key',
        'uq_idempotency_keys_merchant_id_idempotency_key',
        'uq_idempotency_keys_merchant_id_livemode_idempotency_key',
    ),
}


def upgrade():
    with op.batch_alter_table('idempotency_keys') as batch:
        batch.add_column(
            sa.Column('livemode', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Keys from before modes were used by the API keys 0012 marked: a retry after the upgrade
    # must still replay its answer, in the mode its key now has.
    op.execute(
        'UPDATE idempotency_keys SET livemode = TRUE WHERE merchant_id IN '
        '(SELECT merchant_id FROM api_keys WHERE livemode = TRUE)'
    )
    for table, (column, old, new) in KEYS.items():
        with op.batch_alter_table(table) as batch:
            batch.create_unique_constraint(new, ['merchant_id', 'livemode', column])
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(old, type_='unique')
    op.create_index(
        'ix_payments_merchant_mode_created',
        'payments',
        ['merchant_id', 'livemode', 'created_at', 'id'],
    )


def downgrade():
    op.drop_index('ix_payments_merchant_mode_created', table_name='payments')
    for table, (column, old, new) in KEYS.items():
        with op.batch_alter_table(table) as batch:
            batch.create_unique_constraint(old, ['merchant_id', column])
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(new, type_='unique')
    with op.batch_alter_table('idempotency_keys') as batch:
        batch.drop_column('livemode')
