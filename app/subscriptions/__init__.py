"""Subscriptions (RECC): the record behind a recurring payment, its renewals, its end.

- `service`: recording a subscription and its charges, renewals as payments of their own, the
  PSP's view of it, and cancelling it; the only code that moves a subscription's status;
- `reactions`: how it follows its first payment (connected to the payment core's signals);
- `psp_events`: the PSP's invoice and subscription events;
- `reconcile`: the reconciliation pass over subscriptions.
"""
