"""disputes: a cardholder's challenge of a payment, as Stripe reports it (issue 27)

Revision ID: 0016_disputes
Revises: 0015_mode_indexes
Create Date: 2026-12-07 10:40:00

psp_dispute_id is unique so every event of one dispute finds one record. The lists read
(merchant_id, livemode, created_at, id) newest first; what needs a response reads
(merchant_id, livemode, status, evidence_due_by), due soonest first.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0016_disputes'
down_revision = '0015_mode_indexes'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql'
)


def _exact(length: int):
    """A VARCHAR compared byte for byte (0009's collation), as the models' ExactString."""
    dialect = op.get_bind().dialect
    if dialect.name not in ('mysql', 'mariadb'):
        return sa.String(length=length)
    if dialect.is_mariadb:
        collation = 'utf8mb4_nopad_bin'
    elif (dialect.server_version_info or (0,)) >= (8, 0, 17):
        collation = 'utf8mb4_0900_bin'
    else:
        collation = 'utf8mb4_bin'
    return mysql.VARCHAR(length, collation=collation)


def upgrade():
    op.create_table('disputes',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('public_id', _exact(32), nullable=False),
    sa.Column('payment_id', BIG_ID, nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('psp', sa.String(length=20), nullable=False),
    sa.Column('psp_dispute_id', _exact(255), nullable=False),
    sa.Column('psp_charge_id', _exact(255), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('evidence_due_by', TIMESTAMP, nullable=True),
    sa.Column('has_evidence', sa.Boolean(), nullable=False),
    sa.Column('submission_count', sa.Integer(), nullable=False),
    sa.Column('evidence_text', sa.Text(), nullable=True),
    sa.Column('funds_withdrawn_at', TIMESTAMP, nullable=True),
    sa.Column('funds_reinstated_at', TIMESTAMP, nullable=True),
    sa.Column('psp_updated_at', TIMESTAMP, nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.Column('closed_at', TIMESTAMP, nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_disputes_dispute_amount_positive')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_disputes_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_disputes_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes')),
    sa.UniqueConstraint('psp_dispute_id', name=op.f('uq_disputes_psp_dispute_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_disputes_public_id'))
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index('ix_disputes_merchant_mode_created', ['merchant_id', 'livemode', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_disputes_merchant_mode_status_due', ['merchant_id', 'livemode', 'status', 'evidence_due_by'], unique=False)
        batch_op.create_index('ix_disputes_payment', ['payment_id', 'id'], unique=False)


def downgrade():
    op.drop_table('disputes')
