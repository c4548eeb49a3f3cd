"""declined payments are found by their card: a payment not paid names its last declined try's
method type, card brand and last 4 in its search columns

Revision ID: 0034_declined_method_search
Revises: 0033_amount_brand_indexes
Create Date: 2026-12-07 23:10:00

Until now only the paid charge's method filled them, so a support search for "the card ending
9995 that was declined" found nothing. New declines fill them as they are recorded
(app.payments.attempts.show_tried_method); this gives payments declined before it theirs, from
their latest declined attempt. `payment_method` (the paid charge's details) is left as it is.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = '0034_declined_method_search'
down_revision = '0033_amount_brand_indexes'
branch_labels = None
depends_on = None


def _latest(column: str) -> str:
    return (
        f'(SELECT a.{column} FROM payment_attempts a WHERE a.payment_id = payments.id '
        "AND a.outcome = 'failed' ORDER BY a.attempted_at DESC, a.id DESC LIMIT 1)"
    )


def upgrade():
    op.execute(
        f"UPDATE payments SET method_type = {_latest('method_type')}, "
        f"card_brand = {_latest('card_brand')}, card_last4 = {_latest('card_last4')} "
        'WHERE payment_method IS NULL AND method_type IS NULL AND EXISTS ('
        'SELECT 1 FROM payment_attempts a WHERE a.payment_id = payments.id '
        "AND a.outcome = 'failed' AND a.method_type IS NOT NULL)"
    )


def downgrade():
    op.execute(
        'UPDATE payments SET method_type = NULL, card_brand = NULL, card_last4 = NULL '
        'WHERE payment_method IS NULL'
    )
