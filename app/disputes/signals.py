"""What disputes announce; who reacts is connected in `app/wiring.py`."""

from app.common.hooks import Hook

# (payment, dispute, event type: dispute.created | dispute.updated | dispute.closed): the
# locked dispute was recorded or changed, inside its transaction.
changed = Hook("dispute.changed", required=True)
