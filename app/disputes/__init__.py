"""Disputes of paid payments: recorded from the PSP's `charge.dispute.*` events, answered with
evidence or accepted by the merchant through the PSP.

- `psp_events`: the PSP's dispute events, handled inside the event intake's transaction;
- `service`: the only code that writes a dispute (`apply_psp_dispute`), the API's and the
  dashboard's lists, and the merchant's answers (`submit_evidence`, `accept_dispute`);
- `signals.changed` announces a new, changed or closed dispute (its client is told).
"""
