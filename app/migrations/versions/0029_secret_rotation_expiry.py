"""secret rotation expiry: the previous signing secret of a notification endpoint signs until a
set time (NOTIFY_SECRET_ROTATION_GRACE_SECONDS after the rotation, 24 hours by default, as
Stripe), no longer forever (issue 28)

Revision ID: 0029_secret_rotation_expiry
Revises: 0028_dispute_funds_indexes
Create Date: 2026-12-07 16:20:00

An endpoint rotated before this has a previous secret with no expiry, which would never sign
again under the new rule (the previous secret signs only before its expiry): it is given the
grace from now instead, so a client app still verifying with it has that long to switch, and
then nothing signs forever.
"""
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from flask import current_app, has_app_context
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0029_secret_rotation_expiry'
down_revision = '0028_dispute_funds_indexes'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql'
)
DEFAULT_GRACE_SECONDS = 24 * 3600


def upgrade():
    with op.batch_alter_table('notification_endpoints', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('previous_signing_secret_expires_at', TIMESTAMP, nullable=True)
        )
    grace = DEFAULT_GRACE_SECONDS
    if has_app_context():
        grace = current_app.config.get('NOTIFY_SECRET_ROTATION_GRACE_SECONDS', grace)
    endpoints = sa.table(
        'notification_endpoints',
        sa.column('previous_signing_secret', sa.String),
        sa.column('previous_signing_secret_expires_at', TIMESTAMP),
    )
    expires_at = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=grace)
    op.execute(
        endpoints.update()
        .where(endpoints.c.previous_signing_secret.is_not(None))
        .values(previous_signing_secret_expires_at=expires_at)
    )


def downgrade():
    with op.batch_alter_table('notification_endpoints', schema=None) as batch_op:
        batch_op.drop_column('previous_signing_secret_expires_at')
