"""test and live modes: API keys, payments, subscriptions and PSP events carry Stripe's livemode

Revision ID: 0012_modes
Revises: 0011_dashboard_sessions
Create Date: 2026-12-07 09:30:00

A payment's mode follows the API key that created it and decides which Stripe keys and webhook
endpoint serve it; an event's livemode must match its payment's. Rows from before this migration
take the mode the deployment ran in: PAYBRIDGE_PRE_MODES_LIVEMODE=live|test when set, else the
one Stripe mode configured now (a deployment that ran on sk_live_… renamed STRIPE_SECRET_KEY to
STRIPE_LIVE_SECRET_KEY). With both modes configured and rows to mark, the migration stops and
asks: marked wrongly, a live deployment's old API keys would make test payments and Stripe's
live events about its old payments would never be applied. `flask modes adopt-live` remains
for a later correction. New API keys say their mode (pbk_test_…, pbk_live_…), so the part of a
key shown to tell keys apart grows to 16 characters.
"""
import os

import sqlalchemy as sa
from alembic import op
from flask import current_app

# revision identifiers, used by Alembic.
revision = '0012_modes'
down_revision = '0011_dashboard_sessions'
branch_labels = None
depends_on = None

TABLES = ('api_keys', 'payments', 'subscriptions', 'psp_events')
CHOICE = 'PAYBRIDGE_PRE_MODES_LIVEMODE'


def pre_modes_livemode() -> bool:
    """The mode of the rows written before modes existed (see the docstring)."""
    choice = os.environ.get(CHOICE, '').strip().lower()
    if choice in ('live', 'test'):
        return choice == 'live'
    if choice:
        raise RuntimeError(f'{CHOICE}={choice!r}: set it to live or test')
    config = current_app.config
    live, test = config.get('STRIPE_LIVE_SECRET_KEY'), config.get('STRIPE_TEST_SECRET_KEY')
    if live and test:
        raise RuntimeError(
            'API keys and payments from before test and live modes exist, and both modes are '
            f'configured: say which mode they were made in, {CHOICE}=live (the deployment ran '
            f'on an sk_live_ key) or {CHOICE}=test, and run the migration again'
        )
    return bool(live)


def upgrade():
    bind = op.get_bind()
    existing = any(
        bind.execute(sa.text(f'SELECT 1 FROM {table} LIMIT 1')).first() is not None
        for table in ('api_keys', 'payments')
    )
    livemode = existing and pre_modes_livemode()
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column('livemode', sa.Boolean(), nullable=False, server_default=sa.false())
            )
    if livemode:
        for table in TABLES:
            bind.execute(sa.text(f'UPDATE {table} SET livemode = :live'), {'live': True})
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
