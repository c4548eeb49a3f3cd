"""notifications: drop enqueued_at (the outbox is drained by the worker's pump, not by RQ jobs)

Revision ID: 0007_drop_enqueued_at
Revises: 0006_recon_watermark
Create Date: 2026-12-06 12:30:00

enqueued_at recorded that a notification's RQ job had been enqueued, so a sweeper could tell a
lost job from a queued one. Notifications are no longer RQ jobs: the worker's pump claims due
rows straight from the table with a lease (next_attempt_at), so nothing reads the column. A
pending row without next_attempt_at is made due first, so the pump claims it.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0007_drop_enqueued_at'
down_revision = '0006_recon_watermark'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql'
)


def upgrade():
    # The old sweeper took a pending row without next_attempt_at as due; the pump claims by
    # next_attempt_at, so such a row (none is expected) is made due rather than left behind.
    op.execute(
        "UPDATE notifications SET next_attempt_at = '2000-01-01 00:00:00'"
        " WHERE status = 'pending' AND next_attempt_at IS NULL"
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('enqueued_at')


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enqueued_at', TIMESTAMP, nullable=True))
