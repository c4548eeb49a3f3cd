"""endpoint health and test events: when an endpoint's run of failed attempts began (it is
disabled after NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS of them), and the test events merchants
send to their endpoints (issue 28)

Revision ID: 0026_endpoint_health
Revises: 0025_delivery_log_indexes
Create Date: 2026-12-07 13:45:00

Existing endpoints start healthy (failing_since NULL): their next failed attempt starts the
clock. Test events are their own rows, never notifications, so the Events API never shows one.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0026_endpoint_health'
down_revision = '0025_delivery_log_indexes'
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
    with op.batch_alter_table('notification_endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failing_since', TIMESTAMP, nullable=True))
    op.create_table('notification_endpoint_tests',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('public_id', _exact(40), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=50), nullable=False),
    sa.Column('sent_at', TIMESTAMP, nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('request_headers', sa.JSON(), nullable=True),
    sa.Column('request_body', sa.Text(), nullable=True),
    sa.Column('response_headers', sa.JSON(), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['endpoint_id'], ['notification_endpoints.id'], ),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    op.create_index('ix_notification_endpoint_tests_merchant_sent', 'notification_endpoint_tests', ['merchant_id', 'sent_at'], unique=False)
    op.create_index('ix_notification_endpoint_tests_endpoint_sent', 'notification_endpoint_tests', ['endpoint_id', 'sent_at'], unique=False)


def downgrade():
    op.drop_table('notification_endpoint_tests')
    with op.batch_alter_table('notification_endpoints', schema=None) as batch_op:
        batch_op.drop_column('failing_since')
