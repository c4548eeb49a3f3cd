"""refund indexes: refunded payments and refunds are listed and filtered through an index

Revision ID: 0017_refund_indexes
Revises: 0016_disputes
Create Date: 2026-12-07 11:00:00

The transactions list marks and filters refunded and partially refunded payments. "Fully
refunded" is `refunded_amount = amount`, a comparison of two columns no index can serve, so a
payment keeps its refund state (NULL, partial, full) beside refunded_amount, and the lists' new
indexes lead with merchant, mode and that state before the keyset on (created_at, id), as 0015's
do. The existing rows get theirs from their refunded_amount.

The refunds page and the API's refunds list show one mode, newest first, per merchant (by status
or not) or across merchants for an operator. A refund had its mode only through its payment, and
MariaDB does not walk an index in order when the filter is on the joined table (an operator's
list sorted every refund), so a refund keeps a copy of its payment's livemode, backfilled here,
and the new indexes lead with merchant and mode as the payments' do.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0017_refund_indexes'
down_revision = '0016_disputes'
branch_labels = None
depends_on = None

PAYMENTS = {
    'ix_payments_merchant_refund_created': [
        'merchant_id',
        'livemode',
        'refund_state',
        'created_at',
        'id',
    ],
    'ix_payments_refund_created': ['livemode', 'refund_state', 'created_at', 'id'],
}
REFUNDS = {
    'ix_refunds_merchant_mode_created': ['merchant_id', 'livemode', 'created_at', 'id'],
    'ix_refunds_merchant_status_created': [
        'merchant_id',
        'livemode',
        'status',
        'created_at',
        'id',
    ],
    'ix_refunds_livemode_created': ['livemode', 'created_at', 'id'],
}


def upgrade():
    # Batches: SQLite (the demo) alters a table by copying it.
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('refund_state', sa.String(length=7), nullable=True))
    op.execute(
        "UPDATE payments SET refund_state = CASE WHEN refunded_amount >= amount THEN 'full' "
        "ELSE 'partial' END WHERE refunded_amount > 0"
    )
    for name, columns in PAYMENTS.items():
        op.create_index(name, 'payments', columns)
    with op.batch_alter_table('refunds') as batch:
        batch.add_column(
            sa.Column('livemode', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        'UPDATE refunds SET livemode = '
        '(SELECT payments.livemode FROM payments WHERE payments.id = refunds.payment_id)'
    )
    for name, columns in REFUNDS.items():
        op.create_index(name, 'refunds', columns)


def downgrade():
    for name in REFUNDS:
        op.drop_index(name, table_name='refunds')
    for name in PAYMENTS:
        op.drop_index(name, table_name='payments')
    with op.batch_alter_table('refunds') as batch:
        batch.drop_column('livemode')
    with op.batch_alter_table('payments') as batch:
        batch.drop_column('refund_state')
