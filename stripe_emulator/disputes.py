"""Disputes (``GET/POST /v1/disputes/{id}``, ``POST /v1/disputes/{id}/close``) and the control
routes that open, move and close them as a card network would: the Emulator's dispute rules,
mixed into Emulator.

A dispute is opened on a succeeded charge (``charge.dispute.created``, then
``charge.dispute.funds_withdrawn`` unless it is an inquiry), updated by the integration's
evidence (``charge.dispute.updated``), and closed by the integration's acceptance (lost) or the
network's decision (``charge.dispute.closed``; ``charge.dispute.funds_reinstated`` when won).
"""

from __future__ import annotations

from . import objects
from .common import NO_REQUEST, Ctx, as_list, check_params, fetch, paginate, update_metadata
from .errors import StripeErrorResponse, invalid
from .store import public

REASONS = (
    "bank_cannot_process", "check_returned", "credit_not_processed", "customer_initiated",
    "debit_not_authorized", "duplicate", "fraudulent", "general", "incorrect_account_details",
    "insufficient_funds", "noncompliant", "product_not_received", "product_unacceptable",
    "subscription_canceled", "unrecognized",
)  # fmt: skip
EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy",
    "cancellation_policy_disclosure", "cancellation_rebuttal", "customer_communication",
    "customer_email_address", "customer_name", "customer_purchase_ip", "customer_signature",
    "duplicate_charge_documentation", "duplicate_charge_explanation", "duplicate_charge_id",
    "product_description", "receipt", "refund_policy", "refund_policy_disclosure",
    "refund_refusal_explanation", "service_date", "service_documentation", "shipping_address",
    "shipping_carrier", "shipping_date", "shipping_documentation", "shipping_tracking_number",
    "uncategorized_file", "uncategorized_text",
)  # fmt: skip
CLOSED = ("won", "lost", "warning_closed", "prevented")
# What the control route may move an open dispute to (a network's review of it).
OPEN_STATUSES = ("needs_response", "under_review", "warning_needs_response", "warning_under_review")
DEFAULT_RESPONSE_SECONDS = 7 * 86400
DISPUTE_LIST_PARAMS = {"limit", "starting_after", "ending_before", "expand", "created",
                       "charge", "payment_intent"}  # fmt: skip
# What Stripe charges for a chargeback, in the charge's currency's minor units (kept when won).
DISPUTE_FEE = 1500


def dispute(*, created: int, charge_obj: dict, amount: int, reason: str, inquiry: bool,
            due_by: int) -> dict:  # fmt: skip
    """Stripe's dispute object (API 2025), as the fixtures show it."""
    card = (charge_obj.get("payment_method_details") or {}).get("card") or {}
    method_type = (charge_obj.get("payment_method_details") or {}).get("type") or "card"
    details: dict = {"type": method_type}
    if method_type == "card":
        details["card"] = {
            "brand": card.get("brand"),
            "case_type": "inquiry" if inquiry else "chargeback",
            "network_reason_code": "10.4" if reason == "fraudulent" else "13.1",
            "network": card.get("network"),
        }
    return {
        "id": objects.new_id("dp_1"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge_obj["id"],
        "created": created,
        "currency": charge_obj["currency"],
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": due_by,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": not inquiry,
        "livemode": charge_obj["livemode"],
        "metadata": {},
        "payment_intent": charge_obj.get("payment_intent"),
        "payment_method_details": details,
        "reason": reason,
        "status": "warning_needs_response" if inquiry else "needs_response",
    }


def balance_transaction(rec: dict, *, created: int, reinstated: bool) -> dict:
    """The balance transaction of a chargeback's money: withdrawn (the amount and Stripe's
    dispute fee) when it opens, given back (the amount) when it is won. Stripe lists them,
    whole, in the dispute's ``balance_transactions``."""
    amount = rec["amount"] if reinstated else -rec["amount"]
    fee = 0 if reinstated else DISPUTE_FEE
    fee_details = [] if reinstated else [{
        "amount": DISPUTE_FEE, "application": None, "currency": rec["currency"],
        "description": "Dispute fee", "type": "stripe_fee",
    }]  # fmt: skip
    word = "reversal" if reinstated else "withdrawal"
    return {
        "id": objects.new_id("txn_1"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created,
        "balance_type": "payments",
        "created": created,
        "currency": rec["currency"],
        "description": f"Chargeback {word} for {rec['charge']}",
        "exchange_rate": None,
        "fee": fee,
        "fee_details": fee_details,
        "net": amount - fee,
        "reporting_category": "dispute_reversal" if reinstated else "dispute",
        "source": rec["id"],
        "status": "available",
        "type": "adjustment",
    }


class DisputesMixin:
    """Needs ``self.store``, ``self.lock``, ``self.clock`` and ``self.emit`` of Emulator."""

    # -- the network's side (control routes) ---------------------------------------------------
    def open_dispute(self, body: dict) -> dict:
        charge_id, pi_id = body.get("charge"), body.get("payment_intent")
        reason = body.get("reason") or "fraudulent"
        if reason not in REASONS:
            raise invalid("reason", f"reason must be one of {', '.join(REASONS)}.")
        inquiry = bool(body.get("inquiry"))
        respond_in = body.get("respond_in_seconds", DEFAULT_RESPONSE_SECONDS)
        if isinstance(respond_in, bool) or not isinstance(respond_in, int):
            raise invalid("respond_in_seconds", "respond_in_seconds must be an integer.")
        with self.lock:
            if pi_id and not charge_id:
                pi = fetch(self.store, "payment_intent", pi_id, param="payment_intent")
                charge_id = pi.get("latest_charge")
            if not charge_id:
                raise invalid("charge", "Give the charge or payment_intent to dispute.")
            charge = fetch(self.store, "charge", charge_id, param="charge")
            if charge["status"] != "succeeded":
                raise invalid("charge", f"Charge {charge_id} has not succeeded: no dispute.")
            if charge.get("disputed"):
                raise invalid("charge", f"Charge {charge_id} is already disputed.")
            amount = body.get("amount", charge["amount_captured"])
            if (
                isinstance(amount, bool)
                or not isinstance(amount, int)
                or not (0 < amount <= charge["amount_captured"])
            ):
                raise invalid("amount", "amount must be 1 to the charge's captured amount.")
            now = self.clock.now()
            rec = dispute(created=now, charge_obj=charge, amount=amount, reason=reason,
                          inquiry=inquiry, due_by=now + respond_in)  # fmt: skip
            self.store.save("dispute", rec)
            charge["disputed"] = True
            self.store.save("charge", charge)
            self.emit("charge.dispute.created", public(rec), NO_REQUEST)
            if not inquiry:  # an inquiry moves no money
                self._move_funds(rec, "charge.dispute.funds_withdrawn", reinstated=False)
            return public(rec)

    def move_dispute(self, did: str, status: str | None) -> dict:
        """The network moves an open dispute (e.g. reviews it): ``charge.dispute.updated``."""
        if status not in OPEN_STATUSES:
            raise invalid("status", f"status must be one of {', '.join(OPEN_STATUSES)}.")
        with self.lock:
            rec = self._open_dispute(did)
            previous = {"status": rec["status"]}
            rec["status"] = status
            self.store.save("dispute", rec)
            self.emit("charge.dispute.updated", public(rec), NO_REQUEST,
                      previous_attributes=previous)  # fmt: skip
            return public(rec)

    def decide_dispute(self, did: str, outcome: str | None) -> dict:
        """The network's decision: ``charge.dispute.closed`` (+ funds back when won)."""
        if outcome not in ("won", "lost"):
            raise invalid("outcome", "outcome must be won or lost.")
        with self.lock:
            rec = self._open_dispute(did)
            inquiry = rec["status"].startswith("warning_")
            self._close(rec, "warning_closed" if inquiry else outcome, NO_REQUEST)
            if outcome == "won" and not inquiry:
                self._move_funds(rec, "charge.dispute.funds_reinstated", reinstated=True)
            return public(rec)

    # -- the integration's side (/v1) ----------------------------------------------------------
    def get_dispute(self, did: str, expand: list | None = None) -> dict:
        with self.lock:
            return self._render_dispute(fetch(self.store, "dispute", did), expand or [])

    def list_disputes(self, params: dict) -> dict:
        check_params(params, DISPUTE_LIST_PARAMS)
        with self.lock:
            recs = self.store.newest_first("dispute")
            for key in ("charge", "payment_intent"):
                if params.get(key):
                    recs = [r for r in recs if r[key] == params[key]]
            page, has_more = paginate(recs, params, "dispute")
            data = [self._render_dispute(r, []) for r in page]
        return objects.list_object("/v1/disputes", data, has_more)

    def update_dispute(self, did: str, params: dict, ctx: Ctx = NO_REQUEST) -> dict:
        check_params(params, {"evidence", "submit", "metadata", "expand"})
        evidence = params.get("evidence") or {}
        if not isinstance(evidence, dict):
            raise invalid("evidence", "Invalid object: evidence must be a hash.")
        for key, value in evidence.items():
            if key not in EVIDENCE_FIELDS:
                raise invalid(f"evidence[{key}]", f"Received unknown parameter: evidence[{key}]")
            if not isinstance(value, str) or len(value) > 150_000:
                raise invalid(f"evidence[{key}]", "Evidence must be a string of at most 150000.")
        submit = params.get("submit", "true") in (True, "true")
        with self.lock:
            rec = self._open_dispute(did)
            details = rec["evidence_details"]
            self._mark_past_due(rec)
            if evidence and details["past_due"]:
                raise StripeErrorResponse(
                    400,
                    f"The dispute {did} is past due: evidence can no longer be submitted.",
                    code="dispute_past_due",
                )
            if evidence and rec["status"] in ("under_review", "warning_under_review"):
                raise StripeErrorResponse(
                    400,
                    f"The evidence of dispute {did} has been submitted; it is under review.",
                    code="dispute_already_submitted",
                )
            previous: dict = {}
            if evidence:
                previous["evidence"] = dict(rec["evidence"])
                rec["evidence"].update(evidence)
                details["has_evidence"] = True
            update_metadata(rec, params.get("metadata"))
            if submit and evidence:
                previous["status"] = rec["status"]
                inquiry = rec["status"].startswith("warning_")
                rec["status"] = "warning_under_review" if inquiry else "under_review"
                details["submission_count"] += 1
            self.store.save("dispute", rec)
            if previous:
                self.emit("charge.dispute.updated", public(rec), ctx,
                          previous_attributes=previous)  # fmt: skip
            return self._render_dispute(rec, as_list(params.get("expand"), "expand"))

    def close_dispute(self, did: str, params: dict, ctx: Ctx = NO_REQUEST) -> dict:
        """Accept the dispute: it is lost (an inquiry: closed), at once."""
        check_params(params, {"expand"})
        with self.lock:
            rec = fetch(self.store, "dispute", did)
            if rec["status"] in ("lost", "warning_closed"):
                return self._render_dispute(rec, [])  # closing twice changes nothing
            if rec["status"] in CLOSED:
                raise StripeErrorResponse(
                    400, f"The dispute {did} is already closed ({rec['status']}).",
                    code="dispute_already_closed",
                )  # fmt: skip
            inquiry = rec["status"].startswith("warning_")
            self._close(rec, "warning_closed" if inquiry else "lost", ctx)
            return self._render_dispute(rec, as_list(params.get("expand"), "expand"))

    # -- shared -------------------------------------------------------------------------------
    def _open_dispute(self, did: str) -> dict:
        rec = fetch(self.store, "dispute", did)
        if rec["status"] in CLOSED:
            raise StripeErrorResponse(
                400,
                f"The dispute {did} is already closed ({rec['status']}).",
                code="dispute_already_closed",
            )
        return rec

    def _mark_past_due(self, rec: dict) -> None:
        details = rec["evidence_details"]
        if details["due_by"] is not None and self.clock.now() > details["due_by"]:
            details["past_due"] = True

    def _move_funds(self, rec: dict, event_type: str, *, reinstated: bool) -> None:
        """The money leaves (or comes back): a balance transaction on the dispute, and its event."""
        txn = balance_transaction(rec, created=self.clock.now(), reinstated=reinstated)
        rec["balance_transactions"].append(txn)
        self.store.save("dispute", rec)
        self.emit(event_type, public(rec), NO_REQUEST)

    def _close(self, rec: dict, status: str, ctx: Ctx) -> None:
        previous = {"status": rec["status"]}
        rec["status"] = status
        self.store.save("dispute", rec)
        self.emit("charge.dispute.closed", public(rec), ctx, previous_attributes=previous)

    def _render_dispute(self, rec: dict, expand: list) -> dict:
        self._mark_past_due(rec)
        obj = public(rec)
        for path in expand:
            if path == "charge":
                charge = self.store.get("charge", rec["charge"])
                obj["charge"] = public(charge) if charge else rec["charge"]
            else:
                raise invalid("expand", f"This property cannot be expanded ({path}).")
        return obj
