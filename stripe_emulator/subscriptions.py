"""Subscriptions and invoices: created by subscription-mode Checkout, renewed by the emulator
clock, cancelled through the API. Mixed into Emulator."""

from __future__ import annotations

import calendar
import copy
from datetime import UTC, datetime

from . import objects
from .common import (
    LIST_PARAMS,
    NO_REQUEST,
    PAGE_PARAMS,
    as_list,
    check_params,
    fetch,
    filter_created,
    list_expand,
    paginate,
    update_metadata,
)
from .errors import StripeErrorResponse, invalid, unknown
from .store import public

SUB_LIST_PARAMS = LIST_PARAMS | {"customer", "status", "price", "collection_method"}
SUB_STATUSES = {
    "active", "all", "canceled", "ended", "incomplete", "incomplete_expired", "past_due",
    "paused", "trialing", "unpaid",
}  # fmt: skip
INVOICE_LIST_PARAMS = LIST_PARAMS | {"customer", "subscription", "status", "collection_method"}
SUB_UPDATE_PARAMS = {
    "cancel_at_period_end", "cancellation_details", "description", "expand", "metadata",
    "proration_behavior",
}  # fmt: skip
SUB_CANCEL_PARAMS = {"cancellation_details", "expand", "invoice_now", "prorate"}
FEEDBACK = {
    "customer_service", "low_quality", "missing_features", "other", "switched_service",
    "too_complex", "too_expensive", "unused",
}  # fmt: skip
DECLINES = {
    "insufficient_funds": "Your card has insufficient funds.",
    "generic_decline": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "lost_card": "Your card was declined.",
}
ALIVE = ("active", "past_due")
MAX_CATCH_UP = 1000  # periods billed per subscription in one clock step


def add_interval(ts: int, interval: str, n: int) -> int:
    """``ts`` plus ``n`` intervals; months keep the anchor's day, clamped to the month's end."""
    if interval == "day":
        return ts + n * 86400
    if interval == "week":
        return ts + n * 7 * 86400
    months = n * (12 if interval == "year" else 1)
    dt = datetime.fromtimestamp(ts, UTC)
    total = dt.month - 1 + months
    year, month = dt.year + total // 12, total % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


def _bool(value, param: str) -> bool:
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    raise invalid(param, f"Invalid boolean: {value}")


class SubscriptionsMixin:
    """Needs Emulator's store, lock, clock, emit and keep_mandate."""

    # -- periods ---------------------------------------------------------------------------
    def _period(self, sub: dict, k: int) -> tuple[int, int]:
        interval, count = sub["_interval"]
        anchor = sub["billing_cycle_anchor"]
        start = add_interval(anchor, interval, k * count)
        return start, add_interval(anchor, interval, (k + 1) * count)

    @staticmethod
    def _period_end(sub: dict) -> int:
        return sub["items"]["data"][0]["current_period_end"]

    # -- creation from a completed subscription-mode Checkout Session ------------------------
    def _start_subscription(self, rec: dict, method: dict, outcome: str, email, name) -> None:
        """Create the subscription and its first invoice for ``rec``; ``outcome`` is the first
        payment's: succeeded (card), processing (delayed method) or none (zero total)."""
        now = self.clock.now()
        items = rec["_items"]
        recurring = [i for i in items if i["price"]["recurring"]]
        one_time = [i for i in items if not i["price"]["recurring"]]
        rc = recurring[0]["price"]["recurring"]
        sub_id = objects.new_id("sub_1")
        sub = objects.subscription(
            sub_id=sub_id, created=now, customer=rec["customer"], currency=rec["currency"] or "usd",
            items=[], metadata=rec.get("_sub_metadata") or {},
            description=rec.get("_sub_description"), default_payment_method=None,
        )  # fmt: skip
        sub["_interval"] = [rc["interval"], rc["interval_count"]]
        start, end = self._period(sub, 0)
        sub["items"]["data"] = [
            objects.subscription_item(
                created=now, sub_id=sub_id, price_obj=i["price"], quantity=i["quantity"],
                start=start, end=end,
            )
            for i in recurring
        ]  # fmt: skip
        sub["_descriptions"] = [i["description"] for i in recurring]
        sub["_period_index"] = 0
        sub["_fail_next"] = []
        sub["_method"] = dict(method)
        sub["_email"], sub["_name"] = email, name
        sub["_session"] = rec["id"]
        sub["_invoice_prefix"] = rec["customer"][-8:].upper()
        sub["_invoice_seq"] = 0
        objects.in_mode(sub, rec["livemode"])
        rec["subscription"] = sub_id
        self.store.save("subscription", sub)
        self.emit("customer.subscription.created", self.render_subscription(sub, []), NO_REQUEST)

        specs = [
            (i["price"], i["quantity"], i["description"], start, end, si["id"])
            for i, si in zip(recurring, sub["items"]["data"], strict=True)
        ] + [(i["price"], i["quantity"], i["description"], now, now, None) for i in one_time]
        inv = self._new_invoice(sub, "subscription_create", now, now, specs)
        rec["invoice"] = inv["id"]
        if inv["amount_due"] == 0:
            outcome = "none"
        pi = None
        if outcome != "none":
            pi = self._attempt_invoice(sub, inv, outcome)
            rec["_pi"] = pi["id"]
            sub["default_payment_method"] = pi["payment_method"]
        self.store.save("session", rec)
        if outcome == "processing":
            self.store.save("subscription", sub)
            return  # stays incomplete until the delayed payment settles (see _settle)
        self._invoice_paid(sub, inv, pi, NO_REQUEST)
        self._sub_changed(sub, {"status": sub["status"]}, "active", NO_REQUEST)

    def _new_invoice(
        self, sub: dict, reason: str, period_start: int, period_end: int, specs: list
    ) -> dict:
        now = self.clock.now()
        inv_id = objects.new_id("in_1")
        sub["_invoice_seq"] += 1
        lines = [
            objects.invoice_line(
                invoice_id=inv_id, sub=sub, price_obj=price, quantity=qty, description=desc,
                start=start, end=end, subscription_item_id=si_id,
            )
            for price, qty, desc, start, end, si_id in specs
        ]  # fmt: skip
        inv = objects.invoice(
            invoice_id=inv_id, created=now, sub=sub,
            number=f"{sub['_invoice_prefix']}-{sub['_invoice_seq']:04d}",
            billing_reason=reason, period_start=period_start, period_end=period_end, lines=lines,
            customer_email=sub["_email"], customer_name=sub["_name"],
        )  # fmt: skip
        inv["_pi"] = None
        objects.in_mode(inv, sub["livemode"])
        sub["latest_invoice"] = inv_id
        self.store.save("invoice", inv)
        draft = self.render_invoice(inv, [])
        draft["status"] = "draft"
        draft["status_transitions"]["finalized_at"] = None
        draft["number"] = None
        self.emit("invoice.created", draft, NO_REQUEST)
        self.emit("invoice.finalized", self.render_invoice(inv, []), NO_REQUEST)
        return inv

    def _attempt_invoice(self, sub: dict, inv: dict, outcome: str, decline: str | None = None):
        """A PaymentIntent + charge for the invoice: succeeded, processing or failed."""
        now = self.clock.now()
        method = sub["_method"]
        status = {"succeeded": "succeeded", "processing": "processing",
                  "failed": "requires_payment_method"}[outcome]  # fmt: skip
        pi = objects.payment_intent(
            created=now, amount=inv["amount_due"], currency=inv["currency"],
            method_type=method["type"], status=status, metadata={},
            description="Subscription creation"
            if inv["billing_reason"] == "subscription_create" else "Subscription update",
            receipt_email=None,
        )  # fmt: skip
        pi["customer"] = sub["customer"]
        pi["_invoice"] = inv["id"]
        charge = self._invoice_charge(pi, outcome, decline, sub)
        pi["latest_charge"] = charge["id"]
        objects.in_mode(pi, sub["livemode"])
        if outcome == "failed":
            pi["last_payment_error"] = self._payment_error(pi, charge, decline)
        inv["_pi"] = pi["id"]
        inv["attempted"] = True
        inv["attempt_count"] += 1
        self.store.save("payment_intent", pi)
        self.store.save("invoice", inv)
        return pi

    def _invoice_charge(self, pi: dict, outcome: str, decline: str | None, sub: dict) -> dict:
        charge_status = {"succeeded": "succeeded", "processing": "pending", "failed": "failed"}
        pi["latest_charge"] = objects.new_id("ch_3")
        charge = objects.charge(
            created=self.clock.now(), pi=pi, status=charge_status[outcome], method=sub["_method"],
            email=sub["_email"], name=sub["_name"],
        )  # fmt: skip
        charge["customer"] = sub["customer"]
        objects.in_mode(charge, sub["livemode"])
        self.keep_mandate(charge, sub["livemode"])
        if outcome == "failed":
            code = decline or "insufficient_funds"
            charge.update(
                captured=False, failure_code="card_declined",
                failure_message=DECLINES.get(code, "Your card was declined."),
            )  # fmt: skip
            charge["outcome"].update(
                network_status="declined_by_network", type="issuer_declined", reason=code,
                seller_message="The bank did not return any further details with this decline.",
            )  # fmt: skip
        self.store.save("charge", charge)
        self.emit_charge(charge)  # before the intent's and the invoice's events
        return charge

    @staticmethod
    def _payment_error(pi: dict, charge: dict, decline: str | None) -> dict:
        code = decline or "insufficient_funds"
        return {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": code,
            "charge": charge["id"],
            "message": DECLINES.get(code, "Your card was declined."),
            "payment_method": {"id": pi["payment_method"], "type": pi["payment_method_types"][0]},
        }

    def _invoice_paid(self, sub: dict, inv: dict, pi: dict | None, ctx) -> None:
        now = self.clock.now()
        inv.update(status="paid", amount_paid=inv["amount_due"], amount_remaining=0,
                   auto_advance=False, next_payment_attempt=None)  # fmt: skip
        inv["status_transitions"]["paid_at"] = now
        self.store.save("invoice", inv)
        if pi is not None:
            self.emit("payment_intent.succeeded", public(pi), ctx)
        snapshot = self.render_invoice(inv, [])
        self.emit("invoice.paid", snapshot, ctx)
        self.emit("invoice.payment_succeeded", snapshot, ctx)

    def _invoice_failed(self, inv: dict, pi: dict | None, ctx) -> None:
        if pi is not None:
            self.emit("payment_intent.payment_failed", public(pi), ctx)
        self.emit("invoice.payment_failed", self.render_invoice(inv, []), ctx)

    def _sub_changed(self, sub: dict, previous: dict, status: str | None, ctx) -> None:
        """Save; set ``status`` if given; emit customer.subscription.updated for real changes."""
        if status is not None:
            sub["status"] = status
        changed = {k: v for k, v in previous.items() if public(sub).get(k) != v}
        self.store.save("subscription", sub)
        if changed:
            self.emit(
                "customer.subscription.updated",
                self.render_subscription(sub, []),
                ctx,
                previous_attributes=changed,
            )

    # -- the delayed first payment settles (called from Emulator._settle) --------------------
    def _subscription_payment_settled(self, pi: dict, succeeded: bool) -> None:
        inv = self.store.get("invoice", pi.get("_invoice") or "")
        if inv is None:
            return
        sub = self.store.get("subscription", inv["subscription"])
        if succeeded:
            self._invoice_paid(sub, inv, None, NO_REQUEST)
            self._sub_changed(sub, {"status": sub["status"]}, "active", NO_REQUEST)
        else:
            self._invoice_failed(inv, None, NO_REQUEST)

    # -- renewals and ends -------------------------------------------------------------------
    def process_due_subscriptions(self) -> None:
        with self.lock:
            now = self.clock.now()
            for sub in self.store.newest_first("subscription"):
                steps = 0
                while sub["status"] in ALIVE and self._period_end(sub) <= now:
                    steps += 1
                    if steps > MAX_CATCH_UP:
                        break
                    with self.one_act():  # its invoice's charge, intent and invoice events
                        self._next_period(sub, NO_REQUEST)

    def _next_period(self, sub: dict, ctx) -> dict | None:
        """Bill the next period, or end the subscription if it cancels at period end."""
        if sub["cancel_at_period_end"]:
            self._end(sub, self._period_end(sub), ctx)
            return None
        previous = {
            "items": copy.deepcopy(sub["items"]),
            "latest_invoice": sub["latest_invoice"],
            "status": sub["status"],
        }
        k = sub["_period_index"] + 1
        old_start = sub["items"]["data"][0]["current_period_start"]
        old_end = self._period_end(sub)
        start, end = self._period(sub, k)
        for si in sub["items"]["data"]:
            si["current_period_start"], si["current_period_end"] = start, end
        sub["_period_index"] = k
        specs = [
            (si["price"], si["quantity"], desc, start, end, si["id"])
            for si, desc in zip(sub["items"]["data"], sub["_descriptions"], strict=True)
        ]
        inv = self._new_invoice(sub, "subscription_cycle", old_start, old_end, specs)
        failure = sub["_fail_next"].pop(0) if sub["_fail_next"] else None
        if inv["amount_due"] == 0:
            self._invoice_paid(sub, inv, None, ctx)
            status = "active"
        elif failure is None:
            pi = self._attempt_invoice(sub, inv, "succeeded")
            self._invoice_paid(sub, inv, pi, ctx)
            status = "active"
        else:
            pi = self._attempt_invoice(sub, inv, "failed", failure)
            self._invoice_failed(inv, pi, ctx)
            status = "past_due"
        self._sub_changed(sub, previous, status, ctx)
        return inv

    def _end(self, sub: dict, at: int, ctx) -> None:
        sub["status"] = "canceled"
        sub["ended_at"] = at
        sub["canceled_at"] = sub["canceled_at"] or at
        sub["cancellation_details"]["reason"] = (
            sub["cancellation_details"]["reason"] or "cancellation_requested"
        )
        self.store.save("subscription", sub)
        self.emit("customer.subscription.deleted", self.render_subscription(sub, []), ctx)

    # -- API -------------------------------------------------------------------------------
    def _subscription(self, sid: str) -> dict:
        return fetch(self.store, "subscription", sid)

    def render_subscription(self, sub: dict, expand: list) -> dict:
        obj = public(sub)
        for path in expand:
            if path == "latest_invoice":
                inv = self.store.get("invoice", sub["latest_invoice"] or "")
                obj["latest_invoice"] = self.render_invoice(inv, []) if inv else None
            elif path.startswith("latest_invoice."):
                inv = self.store.get("invoice", sub["latest_invoice"] or "")
                sub_path = path.removeprefix("latest_invoice.")
                obj["latest_invoice"] = self.render_invoice(inv, [sub_path]) if inv else None
            elif path == "customer":
                pass  # customers are not modelled; the id stays
            else:
                raise invalid("expand", f"This property cannot be expanded ({path}).")
        return obj

    def get_subscription(self, sid: str, expand: list) -> dict:
        with self.lock:
            self.process_due_subscriptions()
            return self.render_subscription(self._subscription(sid), expand)

    def list_subscriptions(self, params: dict) -> dict:
        check_params(params, SUB_LIST_PARAMS)
        status = params.get("status") or None
        if status is not None and status not in SUB_STATUSES:
            raise invalid(
                "status", f"Invalid status: must be one of {', '.join(sorted(SUB_STATUSES))}"
            )
        expand = list_expand(params)
        with self.lock:
            self.process_due_subscriptions()
            recs = filter_created(self.store.newest_first("subscription"), params.get("created"))
            if status is None:  # Stripe lists subscriptions that have not been canceled
                recs = [r for r in recs if r["status"] not in ("canceled", "incomplete_expired")]
            elif status == "ended":
                recs = [r for r in recs if r["status"] in ("canceled", "incomplete_expired")]
            elif status != "all":
                recs = [r for r in recs if r["status"] == status]
            if params.get("customer"):
                recs = [r for r in recs if r["customer"] == params["customer"]]
            if params.get("price"):
                recs = [
                    r for r in recs
                    if any(si["price"]["id"] == params["price"] for si in r["items"]["data"])
                ]  # fmt: skip
            if params.get("collection_method"):
                recs = [r for r in recs if r["collection_method"] == params["collection_method"]]
            page, has_more = paginate(recs, params, "subscription")
            data = [self.render_subscription(r, expand) for r in page]
        return objects.list_object("/v1/subscriptions", data, has_more)

    def update_subscription(self, sid: str, params: dict, ctx) -> dict:
        check_params(params, SUB_UPDATE_PARAMS)
        expand = as_list(params.get("expand"), "expand")
        cape = None
        if params.get("cancel_at_period_end") not in (None, ""):
            cape = _bool(params["cancel_at_period_end"], "cancel_at_period_end")
        details = self._cancellation_details(params.get("cancellation_details"))
        with self.lock:
            self.process_due_subscriptions()
            sub = self._subscription(sid)
            if sub["status"] in ("canceled", "incomplete_expired") and (
                cape is not None or "description" in params
            ):
                raise StripeErrorResponse(
                    400,
                    "A canceled subscription can only update its cancellation_details and "
                    "metadata.",
                )
            previous = {
                k: copy.deepcopy(sub[k])
                for k in ("cancel_at", "cancel_at_period_end", "canceled_at",
                          "cancellation_details", "metadata", "description")
            }  # fmt: skip
            if cape is True and not sub["cancel_at_period_end"]:
                sub["cancel_at_period_end"] = True
                sub["cancel_at"] = self._period_end(sub)
                sub["canceled_at"] = self.clock.now()
                sub["cancellation_details"]["reason"] = "cancellation_requested"
            elif cape is False and sub["cancel_at_period_end"]:
                sub["cancel_at_period_end"] = False
                sub["cancel_at"] = None
                sub["canceled_at"] = None
                sub["cancellation_details"] = {"comment": None, "feedback": None, "reason": None}
            if details:
                sub["cancellation_details"].update(details)
            update_metadata(sub, params.get("metadata"))
            if "description" in params:
                sub["description"] = params["description"] or None
            self._sub_changed(sub, previous, None, ctx)
            return self.render_subscription(sub, expand)

    @staticmethod
    def _cancellation_details(raw) -> dict:
        if raw in (None, ""):
            return {}
        if not isinstance(raw, dict):
            raise invalid("cancellation_details", "Invalid object: must be a hash.")
        for key in raw:
            if key not in ("comment", "feedback"):
                raise unknown(f"cancellation_details[{key}]")
        if raw.get("feedback") and raw["feedback"] not in FEEDBACK:
            raise invalid(
                "cancellation_details[feedback]",
                f"Invalid feedback: must be one of {', '.join(sorted(FEEDBACK))}",
            )
        return {k: (v or None) for k, v in raw.items()}

    def cancel_subscription(self, sid: str, params: dict, ctx) -> dict:
        check_params(params, SUB_CANCEL_PARAMS)
        details = self._cancellation_details(params.get("cancellation_details"))
        with self.lock:
            self.process_due_subscriptions()
            sub = self._subscription(sid)
            if sub["status"] in ("canceled", "incomplete_expired"):
                raise StripeErrorResponse(
                    400, f"This subscription ({sid}) has already been canceled."
                )
            now = self.clock.now()
            sub["canceled_at"] = now
            sub["cancel_at"] = None
            sub["cancel_at_period_end"] = False
            sub["cancellation_details"]["reason"] = "cancellation_requested"
            sub["cancellation_details"].update(details)
            self._end(sub, now, ctx)
            return self.render_subscription(sub, as_list(params.get("expand"), "expand"))

    # -- invoices ----------------------------------------------------------------------------
    def render_invoice(self, inv: dict, expand: list) -> dict:
        obj = public(inv)
        for path in expand:
            if path in ("payments", "payments.data.payment.payment_intent"):
                data = []
                if inv.get("_pi"):
                    pay = objects.invoice_payment(created=inv["created"], inv=inv, pi_id=inv["_pi"])
                    if path != "payments":
                        pi = self.store.get("payment_intent", inv["_pi"])
                        pay["payment"]["payment_intent"] = public(pi)
                    data.append(pay)
                obj["payments"] = objects.list_object(
                    f"/v1/invoices/{inv['id']}/payments", data, False
                )
            elif path == "subscription":
                sub = self.store.get("subscription", inv["subscription"])
                obj["subscription"] = self.render_subscription(sub, []) if sub else None
            elif path == "customer":
                pass
            else:
                raise invalid("expand", f"This property cannot be expanded ({path}).")
        return obj

    def _invoice(self, iid: str) -> dict:
        return fetch(self.store, "invoice", iid, param="invoice")

    def get_invoice(self, iid: str, expand: list) -> dict:
        with self.lock:
            self.process_due_subscriptions()
            return self.render_invoice(self._invoice(iid), expand)

    def list_invoices(self, params: dict) -> dict:
        check_params(params, INVOICE_LIST_PARAMS)
        status = params.get("status") or None
        if status is not None and status not in ("draft", "open", "paid", "uncollectible", "void"):
            raise invalid(
                "status",
                "Invalid status: must be one of draft, open, paid, uncollectible, or void",
            )
        expand = list_expand(params)
        with self.lock:
            self.process_due_subscriptions()
            recs = filter_created(self.store.newest_first("invoice"), params.get("created"))
            for key in ("customer", "subscription", "status", "collection_method"):
                if params.get(key):
                    recs = [r for r in recs if r[key] == params[key]]
            page, has_more = paginate(recs, params, "invoice")
            data = [self.render_invoice(r, expand) for r in page]
        return objects.list_object("/v1/invoices", data, has_more)

    def list_invoice_lines(self, iid: str, params: dict) -> dict:
        check_params(params, PAGE_PARAMS)
        with self.lock:
            inv = self._invoice(iid)
            page, has_more = paginate(list(inv["lines"]["data"]), params, "line_item")
            data = [copy.deepcopy(line) for line in page]
        return objects.list_object(f"/v1/invoices/{iid}/lines", data, has_more)

    # -- control ---------------------------------------------------------------------------
    def fail_next_renewal(self, sid: str, count: int = 1, decline_code: str | None = None) -> dict:
        decline_code = decline_code or "insufficient_funds"
        if decline_code not in DECLINES:
            raise invalid("decline_code", f"decline_code must be one of {', '.join(DECLINES)}.")
        if count < 1:
            raise invalid("count", "count must be at least 1.")
        with self.lock:
            sub = self._subscription(sid)
            sub["_fail_next"].extend([decline_code] * count)
            self.store.save("subscription", sub)
            return {
                "subscription": self.render_subscription(sub, []),
                "failing_renewals": len(sub["_fail_next"]),
            }

    def renew_now(self, sid: str) -> dict:
        """Bill the next period at once (period start = the current period end), as the clock
        would when it reaches it; a subscription cancelling at period end ends instead."""
        with self.lock, self.one_act():
            sub = self._subscription(sid)
            if sub["status"] not in ALIVE:
                raise StripeErrorResponse(
                    400,
                    f"Only active or past_due subscriptions renew; {sid} is `{sub['status']}`.",
                    code="subscription_not_renewable",
                )
            inv = self._next_period(sub, NO_REQUEST)
            return {
                "subscription": self.render_subscription(sub, []),
                "invoice": self.render_invoice(inv, []) if inv else None,
            }

    def pay_invoice(self, iid: str, outcome: str | None = None, decline_code: str | None = None):
        """Retry an open invoice's payment (what Stripe's automatic retries do)."""
        outcome = outcome or "succeeded"
        if outcome not in ("succeeded", "failed"):
            raise invalid("outcome", "outcome must be succeeded or failed.")
        if decline_code is not None and decline_code not in DECLINES:
            raise invalid("decline_code", f"decline_code must be one of {', '.join(DECLINES)}.")
        with self.lock, self.one_act():
            inv = self._invoice(iid)
            pi = self.store.get("payment_intent", inv.get("_pi") or "")
            if inv["status"] != "open" or pi is None or pi["status"] != "requires_payment_method":
                raise StripeErrorResponse(
                    400,
                    f"Invoice {iid} has no failed payment to retry (status `{inv['status']}`).",
                    code="invoice_not_retryable",
                )
            sub = self.store.get("subscription", inv["subscription"])
            charge = self._invoice_charge(pi, outcome, decline_code, sub)
            inv["attempt_count"] += 1
            previous = {"status": sub["status"]}
            if outcome == "succeeded":
                pi.update(status="succeeded", amount_received=pi["amount"], last_payment_error=None)
                self.store.save("payment_intent", pi)
                self._invoice_paid(sub, inv, pi, NO_REQUEST)
                if sub["latest_invoice"] == iid and sub["status"] == "past_due":
                    self._sub_changed(sub, previous, "active", NO_REQUEST)
            else:
                pi["last_payment_error"] = self._payment_error(pi, charge, decline_code)
                self.store.save("payment_intent", pi)
                self.store.save("invoice", inv)
                self._invoice_failed(inv, pi, NO_REQUEST)
            return {"invoice": self.render_invoice(inv, [])}
