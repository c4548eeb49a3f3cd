"""Retention: records that only grow are purged once they are old enough (service.py).

Payments, their status history, refunds, subscriptions, conflicts and the audit log are kept;
what goes, and when, is in service.py's KINDS and the README's *Retention*.
"""
