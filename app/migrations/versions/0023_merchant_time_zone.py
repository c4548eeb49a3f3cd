"""merchant time zone: the overview's days and the dashboard's times in the merchant's zone

Revision ID: 0023_merchant_time_zone
Revises: 0022_notification_endpoints
Create Date: 2026-12-07 12:30:00

An IANA name (Europe/Paris), checked against zoneinfo when set; every merchant starts in UTC,
what the dashboard showed until now.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0023_merchant_time_zone'
down_revision = '0022_notification_endpoints'
branch_labels = None
depends_on = None


def upgrade():
    # Batches: SQLite (the demo) alters a table by copying it.
    with op.batch_alter_table('merchants') as batch:
        batch.add_column(
            sa.Column('time_zone', sa.String(length=64), nullable=False, server_default='UTC')
        )


def downgrade():
    with op.batch_alter_table('merchants') as batch:
        batch.drop_column('time_zone')
