"""What the payment core announces; who reacts is connected in `app/wiring.py`.

All are sent inside the transaction that made the change, with the payment row locked, so a
reaction's writes (a subscription row, an outbox notification) commit with it or not at all.
"""

from app.common.hooks import Hook

# (payment, change): the payment moved to change.to_status; its history row is flushed.
status_changed = Hook("payment.status_changed", required=True)

# (payment): a subscription's first RECC payment learned its PSP subscription id.
subscription_learned = Hook("payment.subscription_learned", required=True)

# (payment, attempt): a declined attempt to pay was recorded (once per attempt: a replayed or
# late report of it is no news); its row is flushed.
attempt_failed = Hook("payment.attempt_failed", required=True)
