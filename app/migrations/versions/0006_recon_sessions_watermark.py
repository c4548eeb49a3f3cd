"""reconciliation watermark: how far the wide pass has compared the PSP's sessions

Revision ID: 0006_recon_watermark
Revises: 0005_refunds
Create Date: 2026-12-03 16:20:00

reconciliation_runs.sessions_compared_until: every PSP session created before it has been
compared by a (real) wide pass. Each run writes it as it completes a chunk of the window, and
the next run resumes from the highest value instead of listing the whole lookback window again
(app/reconciliation/service.py). Nullable: older runs and dry runs have none, and with none at
all the next run lists the whole window, as before. Indexed so that the highest value is read
from the end of the index, however many runs the table holds.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0006_recon_watermark'
down_revision = '0005_refunds'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql'
)


def upgrade():
    with op.batch_alter_table('reconciliation_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sessions_compared_until', TIMESTAMP, nullable=True))
        batch_op.create_index(
            'ix_reconciliation_runs_sessions_until', ['sessions_compared_until'], unique=False
        )


def downgrade():
    with op.batch_alter_table('reconciliation_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_reconciliation_runs_sessions_until')
        batch_op.drop_column('sessions_compared_until')
