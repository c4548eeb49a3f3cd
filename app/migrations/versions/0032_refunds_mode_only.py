"""drop ix_refunds_merchant_created: a merchant's refunds lists read the indexes that lead with
merchant and mode (0017), never the other mode's rows

Revision ID: 0032_refunds_mode_only
Revises: 0031_rollup_attempts
Create Date: 2026-12-07 19:35:00

(merchant_id, created_at) predates test and live modes. With it in place MariaDB could read a
merchant's refunds list of one mode through it, walking the other mode's refunds too; every
query of a merchant's refunds names its mode, and (merchant_id, livemode, created_at, id) serves
them all (and the merchant foreign key).
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = '0032_refunds_mode_only'
down_revision = '0031_rollup_attempts'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_refunds_merchant_created', table_name='refunds')


def downgrade():
    op.create_index('ix_refunds_merchant_created', 'refunds', ['merchant_id', 'created_at'])
