"""demo storefront: drop its tables (the shop is a client app of its own, with its own store)

Revision ID: 0008_drop_shop
Revises: 0007_drop_enqueued_at
Create Date: 2026-12-07 02:00:00

The demo shop used to live inside PayBridge and keep its products, shoppers and orders in
PayBridge's database (0002). It is now a separate client app (`demo_shop/`) that talks to
PayBridge only through the public API and notifications, and keeps its data in a store of its
own; PayBridge's database holds none of it.

The demo's own SQLite database loses its demo orders, as meant. On MySQL/MariaDB (a
deployment, where the shop was served too) tables that still hold rows are not dropped unless
PAYBRIDGE_DROP_SHOP_TABLES=1 says so, after whatever is worth keeping was exported: the
migration stops and says which.
"""
import os
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008_drop_shop'
down_revision = '0007_drop_enqueued_at'
branch_labels = None
depends_on = None

SHOP_TABLES = (  # children before parents: foreign keys
    'shop_order_items',
    'shop_notifications',
    'shop_orders',
    'shop_settings',
    'shop_products',
    'shop_customers',
)


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite' and os.environ.get('PAYBRIDGE_DROP_SHOP_TABLES') != '1':
        holding = [
            table
            for table in SHOP_TABLES
            if bind.execute(sa.text(f'SELECT 1 FROM {table} LIMIT 1')).first() is not None
        ]
        if holding:
            raise RuntimeError(
                f"the old in-app demo shop's tables still hold rows ({', '.join(holding)}): "
                'export what is worth keeping, then run the migration again with '
                'PAYBRIDGE_DROP_SHOP_TABLES=1'
            )
    for table in SHOP_TABLES:
        op.drop_table(table)


def downgrade():
    # The tables as 0007 had them (empty): 0002's own upgrade, not a copy of it, and the
    # column 0004 added.
    path = Path(__file__).with_name('0002_shop_storefront.py')
    spec = importlib.util.spec_from_file_location('migration_0002_shop', path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    migration.upgrade()
    with op.batch_alter_table('shop_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan', sa.String(length=40), nullable=True))
