"""payment dispute state: disputed payments are marked and filtered in the transactions list
through an index (issue 27)

Revision ID: 0030_payment_dispute_state
Revises: 0029_secret_rotation_expiry
Create Date: 2026-12-07 19:10:00

"Has a dispute" is a question about another table, which no index of payments can answer in the
list's (created_at, id) order; a payment keeps where its disputes stand (NULL, open, lost, won;
app.models.dispute.DisputeState) as it keeps its refund state (0017), and the new indexes lead
with merchant, mode and that state before the keyset. Existing payments get theirs from their
disputes: open while any is open, else lost if any was lost, else won.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0030_payment_dispute_state'
down_revision = '0029_secret_rotation_expiry'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_payments_merchant_dispute_created': [
        'merchant_id',
        'livemode',
        'dispute_state',
        'created_at',
        'id',
    ],
    'ix_payments_dispute_created': ['livemode', 'dispute_state', 'created_at', 'id'],
}
CLOSED = "('won', 'lost', 'warning_closed', 'prevented')"


def upgrade():
    # Batches: SQLite (the demo) alters a table by copying it.
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('dispute_state', sa.String(length=4), nullable=True))
    op.execute(
        'UPDATE payments SET dispute_state = CASE '
        'WHEN EXISTS (SELECT 1 FROM disputes d WHERE d.payment_id = payments.id '
        f'AND d.status NOT IN {CLOSED}) THEN \'open\' '
        'WHEN EXISTS (SELECT 1 FROM disputes d WHERE d.payment_id = payments.id '
        "AND d.status = 'lost') THEN 'lost' ELSE 'won' END "
        'WHERE id IN (SELECT payment_id FROM disputes)'
    )
    for name, columns in INDEXES.items():
        op.create_index(name, 'payments', columns)


def downgrade():
    for name in INDEXES:
        op.drop_index(name, table_name='payments')
    with op.batch_alter_table('payments') as batch:
        batch.drop_column('dispute_state')
