"""Refunds of SUCCESS payments: reserve, ask the PSP, confirm by webhook or reconciliation.

- `service`: the API's and the dashboard's entry point (`submit_refund` / `create_refund`), and
  the only code that moves a refund (`apply_psp_refund`); `signals.finished` announces it;
- `psp_events`: the PSP's refund events, handled inside the event intake's transaction;
- `reconcile`: the reconciliation pass over refunds still pending.
"""
