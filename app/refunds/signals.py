"""What refunds announce; who reacts is connected in `app/wiring.py`."""

from app.common.hooks import Hook

# (payment, refund): the locked refund reached succeeded or failed, inside its transaction.
finished = Hook("refund.finished", required=True)
