"""What subscriptions announce; who reacts is connected in `app/wiring.py`."""

from app.common.hooks import Hook

# (subscription, payment, event type: subscription.created | .renewed | .past_due | .canceled):
# inside the transaction that changed the locked subscription. `payment` is the one the news
# is ordered with: the renewal for .renewed, else the first payment.
changed = Hook("subscription.changed", required=True)
