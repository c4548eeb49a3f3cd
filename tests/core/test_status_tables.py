"""The refund's and the subscription's tables of moves, pair by pair (the payment's is in
test_state_machine.py), and the code that moves them keeping to them."""

from __future__ import annotations

import itertools

import pytest

from app.models import RefundStatus, SubscriptionStatus
from app.models.refund import REFUND_TRANSITIONS
from app.models.subscription import SUBSCRIPTION_TRANSITIONS

REFUND_MOVES = {
    ("pending", "succeeded"),
    ("pending", "failed"),
    # A PSP can fail a refund it had confirmed: the money comes back.
    ("succeeded", "failed"),
}
SUBSCRIPTION_MOVES = {
    ("incomplete", "active"),
    ("incomplete", "past_due"),
    ("incomplete", "cancelled"),
    ("active", "past_due"),
    ("active", "cancelled"),
    ("past_due", "active"),
    ("past_due", "cancelled"),
}


@pytest.mark.parametrize("current,target", list(itertools.product(RefundStatus, repeat=2)))
def test_refund_moves(current, target):
    assert REFUND_TRANSITIONS.allows(current, target) == ((current, target) in REFUND_MOVES)


@pytest.mark.parametrize("current,target", list(itertools.product(SubscriptionStatus, repeat=2)))
def test_subscription_moves(current, target):
    allowed = (current, target) in SUBSCRIPTION_MOVES
    assert SUBSCRIPTION_TRANSITIONS.allows(current, target) == allowed


def test_failed_refund_and_cancelled_subscription_are_final():
    assert not REFUND_TRANSITIONS[RefundStatus.FAILED]
    assert RefundStatus.FAILED.is_final and not RefundStatus.SUCCEEDED.is_final
    assert not SUBSCRIPTION_TRANSITIONS[SubscriptionStatus.CANCELLED]
    # Nothing ever moves back to incomplete: a started subscription has started.
    assert all(SubscriptionStatus.INCOMPLETE not in t for t in SUBSCRIPTION_TRANSITIONS.values())


def test_every_status_has_a_row():
    assert set(REFUND_TRANSITIONS) == set(RefundStatus)
    assert set(SUBSCRIPTION_TRANSITIONS) == set(SubscriptionStatus)
