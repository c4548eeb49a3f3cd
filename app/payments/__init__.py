"""The payment core: creating, registering, expiring and reading payments, the only code that
moves a status (`state`), and what a PSP fact means for a payment (`outcomes`, `psp_facts`).
It imports no feature: refunds, subscriptions and notifications react to its `signals`."""
