"""merchants: their own /api/v1 rate limits (requests per second per API key)

Revision ID: 0010_merchant_rate_limits
Revises: 0009_exact_identifiers
Create Date: 2026-12-07 05:00:00

NULL (every existing merchant) means the global default, API_RATE_LIMIT_READ_PER_SECOND and
API_RATE_LIMIT_WRITE_PER_SECOND; `flask merchants limits` sets a merchant's own.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0010_merchant_rate_limits'
down_revision = '0009_exact_identifiers'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_read_limit', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('api_write_limit', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_column('api_write_limit')
        batch_op.drop_column('api_read_limit')
