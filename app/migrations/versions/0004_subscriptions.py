"""subscriptions (RECC): the subscription record and the PSP invoices that became payments

Revision ID: 0004_subscriptions
Revises: 0003_dashboard
Create Date: 2026-11-22 04:06:03

subscription_charges' unique (psp_invoice_id, attempt) is what records each invoice charge
once, however often its event arrives or reconciliation finds it. shop_orders.plan marks the
demo shop's subscription orders.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0004_subscriptions'
down_revision = '0003_dashboard'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('subscriptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('first_payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('psp', sa.String(length=20), nullable=False),
    sa.Column('psp_subscription_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('interval', sa.String(length=5), nullable=False),
    sa.Column('interval_count', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('current_period_start', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('current_period_end', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('cancelled_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('ended_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('psp_synced_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_subscriptions_amount_positive')),
    sa.CheckConstraint('interval_count > 0', name=op.f('ck_subscriptions_interval_count_positive')),
    sa.ForeignKeyConstraint(['first_payment_id'], ['payments.id'], name=op.f('fk_subscriptions_first_payment_id_payments')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_subscriptions_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions')),
    sa.UniqueConstraint('first_payment_id', name=op.f('uq_subscriptions_first_payment_id')),
    sa.UniqueConstraint('psp_subscription_id', name=op.f('uq_subscriptions_psp_subscription_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_subscriptions_public_id'))
    )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index('ix_subscriptions_merchant_created', ['merchant_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_subscriptions_status_updated', ['status', 'updated_at'], unique=False)

    op.create_table('subscription_charges',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subscription_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('psp_invoice_id', sa.String(length=255), nullable=False),
    sa.Column('attempt', sa.String(length=20), nullable=False),
    sa.Column('billing_reason', sa.String(length=40), nullable=True),
    sa.Column('period_start', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('period_end', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('psp_event_id', sa.String(length=255), nullable=True),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_subscription_charges_payment_id_payments')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_subscription_charges_subscription_id_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_charges')),
    sa.UniqueConstraint('psp_invoice_id', 'attempt', name=op.f('uq_subscription_charges_psp_invoice_id_attempt'))
    )
    with op.batch_alter_table('subscription_charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_charges_payment_id'), ['payment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subscription_charges_subscription_id'), ['subscription_id'], unique=False)

    # The demo shop sells one subscription plan: its orders name the plan they are for.
    with op.batch_alter_table('shop_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan', sa.String(length=40), nullable=True))



def downgrade():
    # Dropping the tables drops their indexes (MariaDB refuses to drop an index a foreign key
    # still needs).
    with op.batch_alter_table('shop_orders', schema=None) as batch_op:
        batch_op.drop_column('plan')
    op.drop_table('subscription_charges')
    op.drop_table('subscriptions')
