"""Refunds (``POST/GET /v1/refunds``): the Emulator's refund rules, mixed into Emulator."""

from __future__ import annotations

from . import objects
from .common import (
    LIST_PARAMS,
    NO_REQUEST,
    as_list,
    blank_to_none,
    check_params,
    fetch,
    filter_created,
    integer,
    mode_of,
    money,
    new_metadata,
    paginate,
    update_metadata,
)
from .errors import StripeErrorResponse, invalid
from .store import public
from .validation import REFUND_FAILURE_REASONS

REFUND_PARAMS = {
    "amount", "charge", "currency", "customer", "expand", "instructions_email", "metadata",
    "origin", "payment_intent", "reason", "refund_application_fee", "reverse_transfer",
}  # fmt: skip
REFUND_LIST_PARAMS = LIST_PARAMS | {"charge", "payment_intent"}
REASONS = ("duplicate", "fraudulent", "requested_by_customer")


class RefundsMixin:
    """Needs ``self.store``, ``self.lock``, ``self.clock``, ``self.config``, ``self.faults``
    and ``self.emit`` of Emulator."""

    # -- charges list their refunds only when expanded (API 2022-11-15 and later) -------------
    def render_charge(self, rec: dict, expand: list | None = None) -> dict:
        obj = public(rec)
        for path in expand or []:
            if path != "refunds":
                raise invalid("expand", f"This property cannot be expanded ({path}).")
            refunds = [self.store.get("refund", rid) for rid in rec.get("_refunds", [])]
            data = [public(r) for r in reversed(refunds) if r]
            obj["refunds"] = objects.list_object(f"/v1/charges/{rec['id']}/refunds", data, False)
        return obj

    # -- create ------------------------------------------------------------------------------
    def create_refund(self, params: dict, ctx) -> dict:
        params = blank_to_none(params)
        check_params(params, REFUND_PARAMS)
        reason = params.get("reason")
        if reason is not None and reason not in REASONS:
            raise invalid(
                "reason",
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
            )
        metadata = new_metadata(params.get("metadata"))
        amount = None
        if "amount" in params:
            amount = integer(params["amount"], "amount", minimum=1)
        expand = as_list(params.get("expand"), "expand")
        if not params.get("charge") and not params.get("payment_intent"):
            raise StripeErrorResponse(
                400,
                "One of the following params should be provided for this request: charge or "
                "payment_intent.",
                code="parameter_missing",
                param="charge",
                save_idempotent=False,
            )
        with self.lock:
            charge = self._refundable_charge(params.get("charge"), params.get("payment_intent"))
            if params.get("currency") and params["currency"].lower() != charge["currency"]:
                raise invalid(
                    "currency",
                    f"The currency of the refund ({params['currency'].lower()}) must match the "
                    f"currency of the charge ({charge['currency']}).",
                )
            remaining = charge["amount_captured"] - charge["amount_refunded"]
            if remaining <= 0:
                raise StripeErrorResponse(
                    400,
                    f"Charge {charge['id']} has already been refunded.",
                    code="charge_already_refunded",
                )
            if amount is None:
                amount = remaining
            elif amount > remaining:
                raise StripeErrorResponse(
                    400,
                    f"Refund amount ({money(amount, charge['currency'])}) is greater than "
                    f"unrefunded amount on charge ({money(remaining, charge['currency'])})",
                    code="amount_too_large",
                    param="amount",
                )
            now = self.clock.now()
            fault = self.faults.take_refund()
            delay = self.config.refund_delay
            status = "pending" if (fault or delay > 0) else "succeeded"
            ref = objects.refund(
                created=now,
                charge_obj=charge,
                amount=amount,
                reason=reason,
                metadata=metadata,
                status=status,
            )
            objects.in_mode(ref, charge["livemode"])
            if fault and fault["kind"] == "refund_pending":
                ref["_plan"] = {"outcome": "succeeded", "due": None}
            elif fault:  # refund_fail: fails once due (at once without a refund delay)
                ref["_plan"] = {
                    "outcome": "failed",
                    "failure_reason": fault["failure_reason"],
                    "due": now + delay,
                }
            elif delay > 0:
                ref["_plan"] = {"outcome": "succeeded", "due": now + delay}
            else:
                ref["_plan"] = None
                ref["destination_details"].get("card", {})["reference_status"] = "available"
            self.store.save("refund", ref)
            # Stripe counts a refund against the charge from its creation (pending included).
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
            charge.setdefault("_refunds", []).append(ref["id"])
            self.store.save("charge", charge)
            self.emit("charge.refunded", self.render_charge(charge), ctx)
            self.emit("refund.created", public(ref), ctx, livemode=ref["_livemode"])
            return self.render_refund(ref, expand)

    def _refundable_charge(self, charge_id: str | None, pi_id: str | None) -> dict:
        charge = None
        if charge_id:
            charge = fetch(self.store, "charge", charge_id, param="charge")
        if pi_id:
            pi = fetch(self.store, "payment_intent", pi_id, param="payment_intent")
            if pi["status"] != "succeeded":
                raise StripeErrorResponse(
                    400,
                    f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
            pi_charge = self.store.get("charge", pi["latest_charge"])
            if charge is not None and charge["id"] != pi["latest_charge"]:
                raise invalid(
                    "charge",
                    f"The charge {charge_id} does not belong to PaymentIntent {pi_id}.",
                )
            charge = pi_charge
        if charge is None or charge["status"] != "succeeded":
            raise StripeErrorResponse(
                400,
                f"Charge {charge['id'] if charge else charge_id} has not succeeded and cannot "
                "be refunded.",
                code="charge_not_refundable",
                param="charge" if charge_id else "payment_intent",
            )
        return charge

    # -- read --------------------------------------------------------------------------------
    def render_refund(self, rec: dict, expand: list) -> dict:
        obj = public(rec)
        for path in expand:
            if path == "charge":
                charge = self.store.get("charge", rec["charge"])
                obj["charge"] = self.render_charge(charge) if charge else rec["charge"]
            elif path == "payment_intent" and rec["payment_intent"]:
                pi = self.store.get("payment_intent", rec["payment_intent"])
                obj["payment_intent"] = public(pi) if pi else rec["payment_intent"]
            else:
                raise invalid("expand", f"This property cannot be expanded ({path}).")
        return obj

    def _refund(self, rid: str) -> dict:
        return fetch(self.store, "refund", rid)

    def get_refund(self, rid: str, expand: list | None = None) -> dict:
        with self.lock:
            self.process_due_refunds()
            return self.render_refund(self._refund(rid), expand or [])

    def update_refund(self, rid: str, params: dict) -> dict:
        check_params(params, {"metadata", "expand"})
        with self.lock:
            rec = self._refund(rid)
            update_metadata(rec, params.get("metadata"))
            self.store.save("refund", rec)
            return self.render_refund(rec, as_list(params.get("expand"), "expand"))

    def list_refunds(self, params: dict) -> dict:
        check_params(params, REFUND_LIST_PARAMS)
        with self.lock:
            self.process_due_refunds()
            recs = filter_created(self.store.newest_first("refund"), params.get("created"))
            for key in ("charge", "payment_intent"):
                if params.get(key):
                    recs = [r for r in recs if r[key] == params[key]]
            page, has_more = paginate(recs, params, "refund")
            data = [public(r) for r in page]
        return objects.list_object("/v1/refunds", data, has_more)

    # -- settling (clock and control) --------------------------------------------------------
    def process_due_refunds(self) -> None:
        with self.lock:
            now = self.clock.now()
            for rec in self.store.newest_first("refund"):
                plan = rec.get("_plan")
                if rec["status"] == "pending" and plan and plan["due"] is not None:
                    if plan["due"] <= now:
                        self._settle_refund(rec, plan["outcome"], plan.get("failure_reason"))

    def succeed_refund(self, rid: str) -> dict:
        with self.lock:
            rec = self._refund(rid)
            if rec["status"] != "pending":
                raise StripeErrorResponse(
                    400,
                    f"Only pending refunds can succeed; {rid} is `{rec['status']}`.",
                    code="refund_not_pending",
                )
            self._settle_refund(rec, "succeeded")
            return public(rec)

    def fail_refund(self, rid: str, failure_reason: str | None = None) -> dict:
        failure_reason = failure_reason or "expired_or_canceled_card"
        if failure_reason not in REFUND_FAILURE_REASONS:
            raise invalid(
                "failure_reason",
                f"failure_reason must be one of {', '.join(REFUND_FAILURE_REASONS)}.",
            )
        with self.lock:
            rec = self._refund(rid)
            if rec["status"] not in ("pending", "succeeded"):
                raise StripeErrorResponse(
                    400,
                    f"Only pending or succeeded refunds can fail; {rid} is `{rec['status']}`.",
                    code="refund_not_failable",
                )
            self._settle_refund(rec, "failed", failure_reason)
            return public(rec)

    def _settle_refund(self, rec: dict, outcome: str, failure_reason: str | None = None) -> None:
        previous = {"status": rec["status"]}
        rec["_plan"] = None
        rec["pending_reason"] = None
        card = rec["destination_details"].get("card")
        if outcome == "succeeded":
            rec["status"] = "succeeded"
            if card:
                card["reference_status"] = "available"
                card["reference"] = objects.new_id("", 23).upper()
            self.store.save("refund", rec)
            for type in ("refund.updated", "charge.refund.updated"):
                self.emit(type, public(rec), NO_REQUEST, previous_attributes=previous,
                          livemode=bool(mode_of(rec)))  # fmt: skip
            return
        rec["status"] = "failed"
        rec["failure_reason"] = failure_reason or "unknown"
        rec["failure_balance_transaction"] = objects.new_id("txn_3")
        if card:
            card["reference_status"] = "unavailable"
        self.store.save("refund", rec)
        # The money comes back to the merchant: the charge no longer counts this refund.
        charge = self.store.get("charge", rec["charge"])
        if charge:
            charge["amount_refunded"] = max(charge["amount_refunded"] - rec["amount"], 0)
            charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
            self.store.save("charge", charge)
        livemode = bool(mode_of(rec))  # a refund of an older --db file has none: test
        self.emit("refund.updated", public(rec), NO_REQUEST, previous_attributes=previous,
                  livemode=livemode)  # fmt: skip
        self.emit("refund.failed", public(rec), NO_REQUEST, livemode=livemode)
        self.emit("charge.refund.updated", public(rec), NO_REQUEST,
                  previous_attributes=previous, livemode=livemode)  # fmt: skip
