"""demo storefront: products, shoppers, orders, received notifications

Revision ID: 0002_shop
Revises: 0001_core
Create Date: 2026-11-22 03:45:55.656515

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0002_shop'
down_revision = '0001_core'
branch_labels = None
depends_on = None


def upgrade():
    # Reviewed by hand: only the shop's own tables (app/shop/models.py).
    op.create_table('shop_customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('last_login_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shop_customers')),
    sa.UniqueConstraint('email', name=op.f('uq_shop_customers_email'))
    )
    op.create_table('shop_products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=80), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('image', sa.String(length=120), nullable=False),
    sa.Column('price', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.CheckConstraint('price > 0', name=op.f('ck_shop_products_price_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shop_products')),
    sa.UniqueConstraint('slug', name=op.f('uq_shop_products_slug'))
    )
    with op.batch_alter_table('shop_products', schema=None) as batch_op:
        batch_op.create_index('ix_shop_products_active_position', ['active', 'position'], unique=False)

    op.create_table('shop_settings',
    sa.Column('key', sa.String(length=50), nullable=False),
    sa.Column('value', sa.String(length=500), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_shop_settings'))
    )
    op.create_table('shop_orders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('checkout_token', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('total_amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('payment_id', sa.String(length=32), nullable=True),
    sa.Column('payment_status_version', sa.Integer(), nullable=False),
    sa.Column('failure_message', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('paid_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.CheckConstraint('total_amount > 0', name=op.f('ck_shop_orders_total_positive')),
    sa.ForeignKeyConstraint(['customer_id'], ['shop_customers.id'], name=op.f('fk_shop_orders_customer_id_shop_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shop_orders')),
    sa.UniqueConstraint('customer_id', 'checkout_token', name=op.f('uq_shop_orders_customer_id_checkout_token')),
    sa.UniqueConstraint('payment_id', name=op.f('uq_shop_orders_payment_id'))
    )
    with op.batch_alter_table('shop_orders', schema=None) as batch_op:
        batch_op.create_index('ix_shop_orders_customer_created', ['customer_id', 'created_at'], unique=False)

    op.create_table('shop_notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('webhook_id', sa.String(length=100), nullable=False),
    sa.Column('event_type', sa.String(length=50), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payment_id', sa.String(length=32), nullable=True),
    sa.Column('status_version', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('received_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['shop_orders.id'], name=op.f('fk_shop_notifications_order_id_shop_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shop_notifications')),
    sa.UniqueConstraint('webhook_id', name=op.f('uq_shop_notifications_webhook_id'))
    )
    with op.batch_alter_table('shop_notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shop_notifications_order_id'), ['order_id'], unique=False)

    op.create_table('shop_order_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('unit_price', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_shop_order_items_quantity_positive')),
    sa.CheckConstraint('unit_price > 0', name=op.f('ck_shop_order_items_unit_price_positive')),
    sa.ForeignKeyConstraint(['order_id'], ['shop_orders.id'], name=op.f('fk_shop_order_items_order_id_shop_orders')),
    sa.ForeignKeyConstraint(['product_id'], ['shop_products.id'], name=op.f('fk_shop_order_items_product_id_shop_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shop_order_items'))
    )
    with op.batch_alter_table('shop_order_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shop_order_items_order_id'), ['order_id'], unique=False)



def downgrade():
    # Dropping a table drops its indexes; dropping them one by one first fails on MySQL,
    # where an index may be the one a foreign key relies on.
    op.drop_table('shop_order_items')
    op.drop_table('shop_notifications')
    op.drop_table('shop_orders')
    op.drop_table('shop_settings')
    op.drop_table('shop_products')
    op.drop_table('shop_customers')
