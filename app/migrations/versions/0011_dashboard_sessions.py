"""dashboard sessions kept server-side, so a log-out, a password change or a timeout ends them

Revision ID: 0011_dashboard_sessions
Revises: 0010_merchant_rate_limits
Create Date: 2026-12-07 05:00:00

The dashboard's session cookie used to be the whole session: a copy taken before a log-out kept
working after it. Each log-in is now a row here, the cookie carries only its random token (the
row keeps its SHA-256), and a session counts only while its row is open, recently used and not
too old. Sessions logged in before this migration have no row and must log in again.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0011_dashboard_sessions'
down_revision = '0010_merchant_rate_limits'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql'
)


def upgrade():
    op.create_table(
        'dashboard_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('last_seen_at', TIMESTAMP, nullable=False),
        sa.Column('ended_at', TIMESTAMP, nullable=True),
        sa.Column('ended_reason', sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name='fk_dashboard_sessions_user_id_users'
        ),
        sa.PrimaryKeyConstraint('id', name='pk_dashboard_sessions'),
        sa.UniqueConstraint('token_hash', name='uq_dashboard_sessions_token_hash'),
    )
    op.create_index('ix_dashboard_sessions_user_id', 'dashboard_sessions', ['user_id'])


def downgrade():
    op.drop_table('dashboard_sessions')  # its index goes with it (MySQL: the FK needs it)
