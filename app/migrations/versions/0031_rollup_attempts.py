"""rollup attempts: the overview's authorization rate from the rollup, not from every payment
of its range joined to its attempts (issue 27: 0.5 s per overview at 1M payments)

Revision ID: 0031_rollup_attempts
Revises: 0030_payment_dispute_state
Create Date: 2026-12-07 19:55:00

Each rollup row also counts its payments' attempts on the hosted page and those the PSP
accepted. The rows written before know neither, so they are dropped with the rollup's
watermark: until the worker's next run rebuilds the rollup (its first run without a watermark
rebuilds everything, as after the first deploy; `flask reporting rebuild` does it at once) the
overview reads the payments live, exact but slower — never figures missing their attempts.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0031_rollup_attempts'
down_revision = '0030_payment_dispute_state'
branch_labels = None
depends_on = None


def upgrade():
    op.execute('DELETE FROM payment_rollup')
    op.execute("DELETE FROM rollup_watermarks WHERE name = 'payments'")
    with op.batch_alter_table('payment_rollup') as batch:
        batch.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(
            sa.Column('attempts_succeeded', sa.Integer(), nullable=False, server_default='0')
        )


def downgrade():
    with op.batch_alter_table('payment_rollup') as batch:
        batch.drop_column('attempts_succeeded')
        batch.drop_column('attempts')
