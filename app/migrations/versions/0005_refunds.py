"""refunds: a refund is its own record against a SUCCESS payment (issue 6)

Revision ID: 0005_refunds
Revises: 0004_subscriptions
Create Date: 2026-11-22 04:07:12

A pending refund reserves its amount against the payment; the sum of pending and succeeded
refunds is checked under the payment's row lock. psp_refund_id is unique so webhooks and
reconciliation map a PSP refund to exactly one record; idempotency_record_id is unique so one
Idempotency-Key makes at most one refund.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0005_refunds'
down_revision = '0004_subscriptions'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql'
)


def upgrade():
    op.create_table('refunds',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('payment_id', BIG_ID, nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=30), nullable=True),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('psp', sa.String(length=20), nullable=False),
    sa.Column('psp_refund_id', sa.String(length=255), nullable=True),
    sa.Column('failure_reason', sa.String(length=100), nullable=True),
    sa.Column('idempotency_record_id', BIG_ID, nullable=True),
    sa.Column('psp_attempts', sa.Integer(), nullable=False),
    sa.Column('last_psp_error', sa.String(length=500), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.Column('completed_at', TIMESTAMP, nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_refunds_refund_amount_positive')),
    sa.ForeignKeyConstraint(['idempotency_record_id'], ['idempotency_keys.id'], name=op.f('fk_refunds_idempotency_record_id_idempotency_keys'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_refunds_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_refunds_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('idempotency_record_id', name=op.f('uq_refunds_idempotency_record_id')),
    sa.UniqueConstraint('psp_refund_id', name=op.f('uq_refunds_psp_refund_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_refunds_public_id'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index('ix_refunds_merchant_created', ['merchant_id', 'created_at'], unique=False)
        batch_op.create_index('ix_refunds_payment', ['payment_id', 'id'], unique=False)
        batch_op.create_index('ix_refunds_status_updated', ['status', 'updated_at'], unique=False)


def downgrade():
    # Dropping the table drops its indexes (MariaDB refuses to drop an index a FK needs).
    op.drop_table('refunds')
