"""notification deliveries: an index of each endpoint's due deliveries, for fair delivery

Revision ID: 0027_delivery_endpoint_due
Revises: 0026_endpoint_health
Create Date: 2026-12-07 14:05:00

The pump gives every endpoint with due deliveries its share of the slots, not only those whose
deliveries are the oldest due: it asks which endpoints have due work and takes each one's
oldest, one index range per endpoint.
"""

from alembic import op

revision = "0027_delivery_endpoint_due"
down_revision = "0026_endpoint_health"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notification_deliveries_endpoint_due",
            ["endpoint_id", "status", "next_attempt_at"],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_deliveries_endpoint_due")
