"""test and live modes: API keys, payments, subscriptions and PSP events carry Stripe's livemode

Revision ID: 0012_modes
Revises: 0011_dashboard_sessions
Create Date: 2026-12-07 09:30:00

A payment's mode follows the API key that created it and decides which Stripe keys and webhook
endpoint serve it; an event's livemode must match its payment's. Rows from before this migration
are test mode (false). A deployment that ran on a live Stripe key until now marks its existing
rows live once: `flask modes adopt-live` (see docs/deploy.md). New API keys say their mode
(pbk_test_…, pbk_live_…), so the part of a key shown to tell keys apart grows to 16 characters.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012_modes'
down_revision = '0011_dashboard_sessions'
branch_labels = None
depends_on = None

TABLES = ('api_keys', 'payments', 'subscriptions', 'psp_events')


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column('livemode', sa.Boolean(), nullable=False, server_default=sa.false())
            )
    with op.batch_alter_table('api_keys') as batch:
        batch.alter_column(
            'prefix', existing_type=sa.String(12), type_=sa.String(16), existing_nullable=False
        )


def downgrade():
    with op.batch_alter_table('api_keys') as batch:
        batch.alter_column(
            'prefix', existing_type=sa.String(16), type_=sa.String(12), existing_nullable=False
        )
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('livemode')
