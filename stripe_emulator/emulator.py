"""The emulator's state and business rules; the HTTP layer (api.py) only parses and renders."""

from __future__ import annotations

import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import cards, objects, validation
from .clock import Clock
from .common import (
    LIST_PARAMS,
    NO_REQUEST,
    PAGE_PARAMS,
    Ctx,
    all_of,
    as_list,
    blank_to_none,
    check_params,
    created_test,
    fetch,
    integer,
    list_expand,
    money,
    new_metadata,
    paginate,
    update_metadata,
    visible,
)
from .disputes import DisputesMixin
from .errors import StripeErrorResponse, invalid, missing, no_such, unknown
from .faults import Faults
from .refunds import RefundsMixin
from .store import Store, public
from .subscriptions import SubscriptionsMixin
from .webhooks import Dispatcher

log = logging.getLogger("stripe_emulator")

MIN_EXPIRY = 30 * 60
MAX_EXPIRY = 24 * 60 * 60
DEFAULT_METHODS = ["card", "sepa_debit"]
PMT_REMOVED_IN = "2026-09-30"
REQUESTS_KEPT = 1000

CREATE_PARAMS = {
    "adaptive_pricing", "after_expiration", "allow_promotion_codes",
    "allowed_payment_method_types", "automatic_tax", "billing_address_collection",
    "cancel_url", "client_reference_id", "consent_collection", "currency", "custom_fields",
    "custom_text", "customer", "customer_creation", "customer_email", "customer_update",
    "discounts", "excluded_payment_method_types", "expand", "expires_at", "invoice_creation",
    "line_items", "locale", "metadata", "mode", "payment_intent_data",
    "payment_method_collection", "payment_method_configuration", "payment_method_options",
    "phone_number_collection", "redirect_on_completion", "return_url",
    "saved_payment_method_options", "setup_intent_data", "shipping_address_collection",
    "shipping_options", "submit_type", "subscription_data", "success_url", "tax_id_collection",
    "ui_mode", "wallet_options",
}  # fmt: skip
LINE_ITEM_PARAMS = {
    "adjustable_quantity", "dynamic_tax_rates", "metadata", "price", "price_data", "quantity",
    "tax_rates",
}  # fmt: skip
PRICE_DATA_PARAMS = {
    "currency", "product", "product_data", "recurring", "tax_behavior", "unit_amount",
    "unit_amount_decimal",
}  # fmt: skip
PRODUCT_DATA_PARAMS = {"description", "images", "metadata", "name", "tax_code", "unit_label"}
RECURRING_PARAMS = {"interval", "interval_count"}
SESSION_LIST_PARAMS = LIST_PARAMS | {
    "status", "payment_intent", "payment_link", "subscription", "customer",
    "customer_account", "customer_details",
}  # fmt: skip
EVENT_LIST_PARAMS = LIST_PARAMS | {"type", "types", "delivery_success"}
SESSION_STATUSES = ("open", "complete", "expired")
EXPANDABLE = {"payment_intent", "payment_intent.latest_charge", "line_items", "subscription",
              "customer", "invoice"}  # fmt: skip


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 12111
    public_url: str | None = None
    db_path: str | None = None
    webhooks: list[tuple[str, str]] = field(default_factory=list)  # test mode's (url, secret)
    live_webhooks: list[tuple[str, str]] = field(default_factory=list)
    retry_schedule: list[float] = field(default_factory=lambda: [60.0, 300.0, 1800.0])
    async_delay: float = 5.0
    latency_mean_ms: float = 0.0
    latency_p99_ms: float = 0.0
    expiry_check_interval: float = 1.0
    webhook_timeout: float = 10.0
    refund_delay: float = 0.0


def _check_keys(given, allowed: set[str], prefix: str) -> None:
    if not isinstance(given, dict):
        raise invalid(prefix, f"Invalid object: {prefix} must be a hash.")
    for key in given:
        if key not in allowed:
            raise unknown(f"{prefix}[{key}]" if prefix else key)


class Emulator(RefundsMixin, DisputesMixin, SubscriptionsMixin):
    def __init__(self, config: Config) -> None:
        self.config = config
        self.clock = Clock()
        self.store = Store(config.db_path)
        self.store.schedule("session", _session_falls_due)
        self.lock = self.store.lock
        self.public_url = config.public_url or f"http://{config.host}:{config.port}"
        self.faults = Faults()
        self.dispatcher = Dispatcher(self)
        # The latest /v1 requests as the emulator saw them (method, path, mode, Stripe-Version),
        # for tests of what a client sends: GET /_emulator/requests.
        self.requests: deque[dict] = deque(maxlen=REQUESTS_KEPT)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._cli_latency = (config.latency_mean_ms, config.latency_p99_ms)
        # The ids of the events emitted so far by the act under way (see `one_act`), else None.
        self._act: list[str] | None = None
        self._install_cli_endpoints()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.dispatcher.start()
        if self.config.expiry_check_interval > 0:
            self._ticker = threading.Thread(target=self._tick, name="emulator-clock", daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        self.dispatcher.stop()

    def _tick(self) -> None:
        while not self._stop.wait(self.config.expiry_check_interval):
            try:
                self.process_due()
            except Exception:  # keep the timer alive whatever happens
                log.exception("processing due work failed")

    def _install_cli_endpoints(self) -> None:
        with self.lock:
            for rec in self.store.newest_first("webhook_endpoint"):
                if rec.get("_cli"):
                    self.store.delete("webhook_endpoint", rec["id"])
            cli = [(url, secret, False) for url, secret in self.config.webhooks]
            cli += [(url, secret, True) for url, secret in self.config.live_webhooks]
            for url, secret, livemode in cli:
                rec = objects.webhook_endpoint(
                    created=self.clock.now(), url=url, enabled_events=["*"], secret=secret
                )
                rec["_cli"] = True
                self.store.save("webhook_endpoint", objects.in_mode(rec, livemode))

    def reset(self) -> None:
        """Forget everything created at runtime; keep the CLI's webhook endpoints."""
        with self.lock:
            keep = {
                "webhook_endpoint": {
                    r["id"] for r in self.store.newest_first("webhook_endpoint") if r.get("_cli")
                }
            }
            self.store.clear(keep)
            self.faults.clear()
            self.dispatcher.reset()
            self.requests.clear()
            self.clock.reset()
            self.config.latency_mean_ms, self.config.latency_p99_ms = self._cli_latency

    # -- checkout sessions ----------------------------------------------------------------
    def create_session(self, params: dict, ctx: Ctx = NO_REQUEST) -> dict:
        params = blank_to_none(params)
        if "payment_method_types" in params:
            if (ctx.stripe_version or PMT_REMOVED_IN) >= PMT_REMOVED_IN:
                raise invalid(
                    "payment_method_types",
                    "The `payment_method_types` parameter is not supported in this API version "
                    "(2026-09-30 and later). Use `allowed_payment_method_types` or "
                    "`excluded_payment_method_types` instead.",
                    "parameter_unknown",
                )
            params["allowed_payment_method_types"] = params.pop("payment_method_types")
        check_params(params, CREATE_PARAMS)
        mode = params.get("mode")
        if mode is None:
            raise missing("mode")
        if mode not in ("payment", "setup", "subscription"):
            raise invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
        ui_mode = params.get("ui_mode")
        if ui_mode is not None and ui_mode not in (
            "hosted_page", "embedded_page", "elements", "form"
        ):  # fmt: skip
            raise invalid(
                "ui_mode",
                f"Invalid ui_mode: must be one of hosted_page, embedded_page, elements or form "
                f"(got {ui_mode!r}).",
            )
        # Stripe refuses the other mode's data instead of ignoring it.
        for key, allowed_in in (("payment_intent_data", "payment"),
                                ("subscription_data", "subscription")):  # fmt: skip
            if key in params and mode != allowed_in:
                raise invalid(key, f"You can not pass `{key}` in `{mode}` mode.")
        params["metadata"] = new_metadata(params.get("metadata"))
        now = self.clock.now()
        expires_at = now + MAX_EXPIRY
        if "expires_at" in params:
            expires_at = integer(params["expires_at"], "expires_at")
            if expires_at < now + MIN_EXPIRY:
                raise invalid(
                    "expires_at",
                    "The `expires_at` timestamp must be at least 30 minutes from Checkout "
                    "Session creation.",
                )
            if expires_at > now + MAX_EXPIRY:
                raise invalid(
                    "expires_at",
                    "The `expires_at` timestamp must be less than 24 hours from Checkout "
                    "Session creation.",
                )
        if "currency" in params:
            params["currency"] = validation.currency(params["currency"], "currency")
        if "customer_email" in params:
            validation.email(params["customer_email"], "customer_email")
        for key in ("success_url", "cancel_url", "return_url"):
            if key in params:
                validation.url(params[key], key)
        items = self._line_items(params, mode, now)
        methods = _method_types(params, "allowed_payment_method_types")
        excluded = _method_types(params, "excluded_payment_method_types")
        methods = [m for m in (methods or DEFAULT_METHODS) if m not in excluded] or ["card"]
        sid = objects.session_id(ctx.livemode)
        rec = objects.checkout_session(
            sid=sid,
            created=now,
            expires_at=expires_at,
            mode=mode,
            url=f"{self.public_url}/c/pay/{sid}",
            items=items,
            params=params,
            payment_method_types=methods,
        )
        pid = params.get("payment_intent_data")
        rec["_items"] = items
        rec["_pi_metadata"] = (pid or {}).get("metadata") or {} if isinstance(pid, dict) else {}
        rec["_pi_description"] = (pid or {}).get("description") if isinstance(pid, dict) else None
        rec["_settlement"] = None
        objects.in_mode(rec, ctx.livemode)
        sdata = params.get("subscription_data")
        if isinstance(sdata, dict) and mode == "subscription":
            rec["_sub_metadata"] = {
                k: v for k, v in (sdata.get("metadata") or {}).items() if v != ""
            }
            rec["_sub_description"] = sdata.get("description") or None
        with self.lock:
            self.store.save("session", rec)
        return self.render_session(rec, as_list(params.get("expand"), "expand"))

    def _line_items(self, params: dict, mode: str, now: int) -> list[dict]:
        raw = params.get("line_items")
        if mode == "setup":
            if raw:
                raise invalid("line_items", "You cannot pass `line_items` in `setup` mode.")
            return []
        if not raw:
            raise missing("line_items")
        if isinstance(raw, dict):  # sparse indexes such as line_items[1] only
            raw = list(raw.values())
        if not isinstance(raw, list):
            raise invalid("line_items", "Invalid array: line_items")
        if len(raw) > 100:
            raise invalid("line_items", "You may only specify up to 100 line items.")
        items = []
        currency = None
        recurring_seen = False
        for i, li in enumerate(raw):
            p = f"line_items[{i}]"
            _check_keys(li, LINE_ITEM_PARAMS, p)
            if "price" in li and li["price"]:
                raise no_such("price", li["price"], param=f"{p}[price]", status=400)
            pdata = li.get("price_data")
            if not pdata:
                raise invalid(p, f"You must specify either `price` or `price_data` in `{p}`.")
            _check_keys(pdata, PRICE_DATA_PARAMS, f"{p}[price_data]")
            if not pdata.get("currency"):
                raise missing(f"{p}[price_data][currency]")
            cur = validation.currency(pdata["currency"], f"{p}[price_data][currency]")
            if currency and cur != currency:
                raise invalid(
                    f"{p}[price_data][currency]", "All line items must use the same currency."
                )
            currency = cur
            if pdata.get("unit_amount") not in (None, ""):
                param = f"{p}[price_data][unit_amount]"
                unit = validation.amount(integer(pdata["unit_amount"], param, minimum=0), param)
            elif pdata.get("unit_amount_decimal") not in (None, ""):
                unit = validation.decimal_amount(
                    pdata["unit_amount_decimal"], f"{p}[price_data][unit_amount_decimal]"
                )
            else:
                raise missing(f"{p}[price_data][unit_amount]")
            product_data = pdata.get("product_data")
            name = None
            if product_data:
                _check_keys(product_data, PRODUCT_DATA_PARAMS, f"{p}[price_data][product_data]")
                name = product_data.get("name")
                if not name:
                    raise missing(f"{p}[price_data][product_data][name]")
            elif not pdata.get("product"):
                raise missing(f"{p}[price_data][product_data]")
            recurring = pdata.get("recurring")
            if recurring:
                _check_keys(recurring, RECURRING_PARAMS, f"{p}[price_data][recurring]")
                interval = recurring.get("interval")
                if interval not in ("day", "week", "month", "year"):
                    if interval is None:
                        raise missing(f"{p}[price_data][recurring][interval]")
                    raise invalid(
                        f"{p}[price_data][recurring][interval]",
                        "Invalid interval: must be one of day, week, month, or year",
                    )
                recurring = {
                    "interval": interval,
                    "interval_count": integer(
                        recurring.get("interval_count", 1),
                        f"{p}[price_data][recurring][interval_count]",
                        minimum=1,
                    ),
                }
                if mode == "payment":
                    raise invalid(
                        f"{p}[price_data][recurring]",
                        "You specified `payment` mode but passed a recurring price. Either "
                        "switch to `subscription` mode or use only one-time prices.",
                    )
                if recurring_seen and recurring != recurring_seen:
                    raise invalid(
                        f"{p}[price_data][recurring]",
                        "All recurring prices in a Checkout Session must have the same billing "
                        "interval and interval_count.",
                    )
                recurring_seen = recurring
            if li.get("quantity") in (None, ""):
                raise missing(f"{p}[quantity]")
            qty = integer(li["quantity"], f"{p}[quantity]", minimum=0)
            price_obj = objects.price(
                created=now,
                currency=cur,
                unit_amount=unit,
                product_name=name or "",
                recurring=recurring,
                product=pdata.get("product"),
            )
            items.append(
                objects.line_item(price_obj=price_obj, quantity=qty, description=name or "")
            )
        total = sum(i["amount_total"] for i in items)
        if total > validation.MAX_AMOUNT:
            raise invalid(
                "line_items",
                f"The total amount ({total}) is greater than the maximum amount allowed "
                f"({validation.MAX_AMOUNT}).",
                "amount_too_large",
            )
        minimum = validation.MIN_CHARGE_AMOUNTS.get(currency or "")
        if mode == "payment" and minimum and 0 < total < minimum:
            # A subscription's invoice under the minimum is not refused: Stripe carries it
            # to the customer's balance instead of charging it.
            raise invalid(
                "line_items",
                "The Checkout Session's total amount due must add up to at least "
                f"{money(minimum, currency)} {currency}",
                "amount_too_small",
            )
        if mode == "subscription" and not recurring_seen:
            raise invalid(
                "line_items",
                "You must provide at least one recurring price in `subscription` mode when "
                "using prices.",
            )
        return items

    def _session(self, sid: str, param: str = "session") -> dict:
        rec = self.store.get("session", sid)
        if rec is None:
            raise no_such("checkout.session", sid, param=param)
        visible(rec, "checkout.session", sid, param)
        self._expire_if_due(rec)
        return rec

    def get_session(self, sid: str, expand: list | None = None) -> dict:
        with self.lock:
            return self.render_session(self._session(sid), expand or [])

    def render_session(self, rec: dict, expand: list) -> dict:
        obj = public(rec)
        for path in expand:
            if path not in EXPANDABLE:
                raise invalid(
                    "expand",
                    f"This property cannot be expanded ({path}).",
                )
            if path == "line_items":
                items = [dict(i) for i in rec.get("_items", [])]
                obj["line_items"] = objects.list_object(
                    f"/v1/checkout/sessions/{rec['id']}/line_items", items, False
                )
            elif path == "subscription" and obj["subscription"]:
                sub = self.store.get("subscription", obj["subscription"])
                if sub:
                    obj["subscription"] = self.render_subscription(sub, [])
            elif path == "invoice" and obj["invoice"]:
                inv = self.store.get("invoice", obj["invoice"])
                if inv:
                    obj["invoice"] = self.render_invoice(inv, [])
            elif path.startswith("payment_intent") and obj["payment_intent"]:
                pi = self.store.get("payment_intent", obj["payment_intent"])
                if pi:
                    sub = ["latest_charge"] if path == "payment_intent.latest_charge" else []
                    obj["payment_intent"] = self.render_payment_intent(pi, sub)
        return obj

    def list_sessions(self, params: dict) -> dict:
        check_params(params, SESSION_LIST_PARAMS)
        if params.get("status"):
            validation.enum(params["status"], "status", SESSION_STATUSES)
        expand = list_expand(params)
        equal = {
            key: params[key]
            for key in ("status", "payment_intent", "payment_link", "subscription", "customer")
            if params.get(key)
        }
        email = (params.get("customer_details") or {}).get("email")
        keep = all_of(
            created_test(params.get("created")),
            (lambda r: all(r.get(k) == v for k, v in equal.items())) if equal else None,
            (lambda r: (r.get("customer_details") or {}).get("email") == email) if email else None,
        )
        with self.lock:
            self.process_due()
            recs, position = self.store.listing("session")
            page, has_more = paginate(recs, params, "checkout.session", keep, position)
            data = [self.render_session(r, expand) for r in page]
        return objects.list_object("/v1/checkout/sessions", data, has_more)

    def list_line_items(self, sid: str, params: dict) -> dict:
        check_params(params, PAGE_PARAMS)
        with self.lock:
            rec = self._session(sid)
            # Line items keep the order they were given in, unlike other lists.
            page, has_more = paginate(list(rec.get("_items", [])), params, "line_item")
        data = [public(i) for i in page]
        return objects.list_object(f"/v1/checkout/sessions/{sid}/line_items", data, has_more)

    def expire_session(self, sid: str, ctx: Ctx = NO_REQUEST) -> dict:
        with self.lock:
            rec = self._session(sid)
            if rec["status"] != "open":
                raise StripeErrorResponse(
                    400,
                    'Only Checkout Sessions with a status in ["open"] can be expired. This '
                    f"Checkout Session has a status of `{rec['status']}`.",
                )
            self._expire(rec, ctx)
            return self.render_session(rec, [])

    def update_session(self, sid: str, params: dict) -> dict:
        """Stripe lets an integration update a session's metadata."""
        check_params(params, {"metadata", "expand"})
        with self.lock:
            rec = self._session(sid)
            update_metadata(rec, params.get("metadata"))
            self.store.save("session", rec)
            return self.render_session(rec, as_list(params.get("expand"), "expand"))

    def _expire(self, rec: dict, ctx: Ctx) -> None:
        rec["status"] = "expired"
        rec["url"] = None
        self.store.save("session", rec)
        self.emit("checkout.session.expired", public(rec), ctx)

    def _expire_if_due(self, rec: dict) -> None:
        if rec["status"] == "open" and rec["expires_at"] <= self.clock.now():
            self._expire(rec, NO_REQUEST)

    # -- paying (hosted page and control route share these rules) -------------------------
    def pay(
        self,
        sid: str,
        *,
        card: str | None = None,
        iban: str | None = None,
        outcome: str | None = None,
        email: str | None = None,
        name: str | None = None,
        three_d_secure: str | None = "approve",
        settle_outcome: str | None = None,
        wallet: str | None = None,
        expiry: tuple[int, int] | None = None,
    ) -> dict:
        """Pay an open session; returns ``{"session", "declined", "decline_code", ...}``.

        A declined attempt keeps the session open, as on Stripe: the session's PaymentIntent
        (made by the first attempt) gets `last_payment_error` and a failed charge, and
        `payment_intent.payment_failed` is sent; the next attempt reuses that intent."""
        with self.lock, self.one_act():
            rec = self._session(sid, param="id")
            if rec["status"] != "open":
                raise StripeErrorResponse(
                    400,
                    f"This Checkout Session is no longer payable: its status is `{rec['status']}`.",
                    code="checkout_session_not_open",
                )
            email = email or rec.get("customer_email")
            if outcome is not None:
                if outcome == "paid":
                    return self._complete(rec, {"type": "card"}, email, name)
                if outcome == "unpaid":
                    method = {"type": "sepa_debit", "iban": "DE89370400440532013000"}
                    return self._complete_delayed(
                        rec, method, email, name, settle_outcome or "succeeded"
                    )
                if outcome == "declined":
                    declined = {"type": "card", "number": "4000000000000002"}
                    return self._declined(
                        rec, cards.CARD_DECLINES["4000000000000002"], declined, email
                    )
                raise invalid("outcome", "outcome must be one of paid, unpaid, declined.")
            if iban is not None:
                if "sepa_debit" not in rec["payment_method_types"]:
                    raise invalid("iban", "sepa_debit is not allowed for this Checkout Session.")
                result = cards.iban_outcome(iban)
                if result is None:  # refused by the page's own check: no attempt at Stripe
                    return self._declined(rec, cards.INVALID_IBAN)
                chosen = settle_outcome or ("succeeded" if result else "failed")
                method = {"type": "sepa_debit", "iban": cards.normalize(iban)}
                return self._complete_delayed(rec, method, email, name, chosen)
            if card is not None:
                if "card" not in rec["payment_method_types"]:
                    raise invalid("card", "card is not allowed for this Checkout Session.")
                if wallet is not None and wallet not in objects.WALLETS:
                    raise invalid("wallet", f"wallet must be one of {', '.join(objects.WALLETS)}.")
                result = cards.card_outcome(card)
                method = {"type": "card", "number": cards.normalize(card), "wallet": wallet}
                if expiry is not None:
                    method["exp_month"], method["exp_year"] = expiry
                if result is cards.INCORRECT_NUMBER:  # the page's own check: no attempt
                    return self._declined(rec, result)
                if isinstance(result, cards.Decline):
                    return self._declined(rec, result, method, email)
                if result == "3ds":
                    if three_d_secure == "deny":
                        method["three_d_secure"] = "failed"
                        return self._declined(rec, cards.AUTH_FAILED, method, email)
                    if three_d_secure != "approve":
                        return self._not_declined(rec, requires_action=True)
                    method["three_d_secure"] = "authenticated"
                return self._complete(rec, method, email, name)
            if rec["payment_status"] == "no_payment_required":
                return self._complete(rec, {"type": "card"}, email, name)
            raise missing("card")

    def _not_declined(self, rec: dict, *, requires_action: bool = False) -> dict:
        """pay()'s answer when the payment went through, or waits for 3D Secure."""
        return {
            "session": self.render_session(rec, []),
            "declined": False,
            "decline_code": None,
            "requires_action": requires_action,
        }

    def _declined(
        self,
        rec: dict,
        decline: cards.Decline,
        method: dict | None = None,
        email: str | None = None,
    ) -> dict:
        """A declined attempt. With `method` it reached Stripe (a payment-mode session): it is
        recorded on the session's PaymentIntent and announced; without, the page refused the
        input itself (a malformed card number or IBAN) and Stripe saw nothing."""
        if method is not None and rec["mode"] == "payment":
            self._record_decline(rec, decline, method, email)
        return {
            "session": self.render_session(rec, []),
            "declined": True,
            "decline_code": decline.decline_code or decline.code,
            "code": decline.code,
            "message": decline.message,
            "requires_action": False,
        }

    def _finish(self, rec: dict, email: str | None, name: str | None) -> None:
        rec["status"] = "complete"
        rec["url"] = None
        rec["customer_details"] = objects.customer_details(email or "customer@example.com", name)
        if rec["mode"] == "subscription":
            # Stripe always creates a customer for a subscription; the subscription and its
            # first invoice come from _start_subscription (subscriptions.py).
            rec["customer"] = rec["customer"] or objects.new_id("cus_", 14)

    def _record_decline(
        self, rec: dict, decline: cards.Decline, method: dict, email: str | None
    ) -> None:
        """Stripe's trace of a declined attempt: the intent back to requires_payment_method with
        `last_payment_error` (the payment method in full), a failed charge unless 3-D Secure
        failed before any charge, and `payment_intent.payment_failed`."""
        pi = self._attempt_pi(rec, method, "requires_payment_method")
        error: dict = {
            "type": "card_error",
            "code": decline.code,
            "decline_code": decline.decline_code,
            "doc_url": f"https://stripe.com/docs/error-codes/{decline.code.replace('_', '-')}",
            "message": decline.message,
            "payment_method": objects.payment_method(
                pm_id=pi["payment_method"], created=pi["created"], method=method, email=email
            ),
        }
        if decline is cards.AUTH_FAILED:
            error["type"] = "invalid_request_error"
            pi["latest_charge"] = None
        else:
            charge = objects.charge(
                created=self.clock.now(), pi=pi, status="failed", method=method, email=email,
                name=None, failure=decline,
            )  # fmt: skip
            charge["captured"] = False
            objects.in_mode(charge, rec["livemode"])
            self.store.save("charge", charge)
            self.keep_mandate(charge, rec["livemode"])
            error["charge"] = charge["id"]
            self.emit_charge(charge)
        pi["last_payment_error"] = error
        self.store.save("payment_intent", pi)
        self.store.save("session", rec)
        self.emit("payment_intent.payment_failed", public(pi), NO_REQUEST)

    def _attempt_pi(self, rec: dict, method: dict, status: str) -> dict:
        """The session's PaymentIntent for a new attempt: made by the first attempt, reused by
        every later one (a new charge id and payment method each time)."""
        pi = self.store.get("payment_intent", rec.get("_pi") or "")
        if pi is None:
            pi = objects.payment_intent(
                created=self.clock.now(),
                amount=rec["amount_total"] or 0,
                currency=rec["currency"] or "usd",
                method_type=method["type"],
                status=status,
                metadata=rec.get("_pi_metadata") or {},
                description=rec.get("_pi_description"),
                receipt_email=None,
            )
            objects.in_mode(pi, rec["livemode"])
            if rec["mode"] == "payment":
                rec["payment_intent"] = pi["id"]
            rec["_pi"] = pi["id"]
        else:
            pi["latest_charge"] = objects.new_id("ch_3")
            pi["payment_method"] = objects.new_id("pm_1")
            pi["status"] = status
            if method["type"] not in pi["payment_method_types"]:
                pi["payment_method_types"].append(method["type"])
        return pi

    def _new_pi(self, rec: dict, method: dict, status: str, email, name) -> dict:
        pi = self._attempt_pi(rec, method, status)
        pi["last_payment_error"] = None
        pi["amount_received"] = pi["amount"] if status == "succeeded" else 0
        charge_status = {"succeeded": "succeeded", "processing": "pending"}[status]
        charge = objects.charge(
            created=self.clock.now(), pi=pi, status=charge_status, method=method, email=email,
            name=name,
        )  # fmt: skip
        objects.in_mode(pi, rec["livemode"])
        objects.in_mode(charge, rec["livemode"])
        self.store.save("charge", charge)
        self.keep_mandate(charge, rec["livemode"])
        self.store.save("payment_intent", pi)
        self.emit_charge(charge)
        # Subscription-mode sessions carry the subscription; the invoice owns the intent.
        if rec["mode"] == "payment":
            rec["payment_intent"] = pi["id"]
        rec["_pi"] = pi["id"]
        return pi

    def _complete(self, rec: dict, method: dict, email: str | None, name: str | None) -> dict:
        self._finish(rec, email, name)
        if rec["mode"] == "subscription":
            paid = rec["payment_status"] != "no_payment_required"
            if paid:
                rec["payment_status"] = "paid"
            email = rec["customer_details"]["email"]
            self._start_subscription(rec, method, "succeeded" if paid else "none", email, name)
        elif rec["payment_status"] == "no_payment_required" or rec["mode"] == "setup":
            if rec["mode"] == "setup":
                rec["setup_intent"] = objects.new_id("seti_1")
            self.store.save("session", rec)
        else:
            rec["payment_status"] = "paid"
            pi = self._new_pi(rec, method, "succeeded", rec["customer_details"]["email"], name)
            self.store.save("session", rec)
            self.emit("payment_intent.succeeded", public(pi), NO_REQUEST)
        self.emit("checkout.session.completed", public(rec), NO_REQUEST)
        return self._not_declined(rec)

    def _complete_delayed(self, rec: dict, method: dict, email, name, settle_outcome) -> dict:
        if settle_outcome not in ("succeeded", "failed"):
            raise invalid("settle_outcome", "settle_outcome must be succeeded or failed.")
        if rec["payment_status"] == "no_payment_required":
            return self._complete(rec, method, email, name)  # nothing to debit, nothing to settle
        self._finish(rec, email, name)
        if rec["mode"] == "subscription":
            email = rec["customer_details"]["email"]
            self._start_subscription(rec, method, "processing", email, name)
        else:
            self._new_pi(rec, method, "processing", rec["customer_details"]["email"], name)
        due = None
        if self.config.async_delay > 0:
            due = self.clock.now() + self.config.async_delay
        rec["_settlement"] = {"outcome": settle_outcome, "due": due}
        self.store.save("session", rec)
        self.emit("checkout.session.completed", public(rec), NO_REQUEST)
        return self._not_declined(rec)

    def settle(self, sid: str, outcome: str | None = None) -> dict:
        with self.lock:
            rec = self._session(sid, param="id")
            if not rec.get("_settlement"):
                raise StripeErrorResponse(
                    400,
                    "This Checkout Session has no pending delayed payment to settle.",
                    code="no_pending_payment",
                )
            self._settle(rec, outcome or rec["_settlement"]["outcome"])
            return self.render_session(rec, [])

    def _settle(self, rec: dict, outcome: str) -> None:
        if outcome not in ("succeeded", "failed"):
            raise invalid("outcome", "outcome must be succeeded or failed.")
        with self.lock, self.one_act():
            self._settle_act(rec, outcome)

    def _settle_act(self, rec: dict, outcome: str) -> None:
        rec["_settlement"] = None
        pi = self.store.get("payment_intent", rec["_pi"])
        charge = self.store.get("charge", pi["latest_charge"])
        if outcome == "succeeded":
            rec["payment_status"] = "paid"
            pi["status"] = "succeeded"
            pi["amount_received"] = pi["amount"]
            if charge:
                charge.update(
                    status="succeeded", paid=True, amount_captured=charge["amount"],
                    balance_transaction=objects.new_id("txn_3"),
                )  # fmt: skip
                self.store.save("charge", charge)
                self.emit_charge(charge)
            self.store.save("payment_intent", pi)
            self.store.save("session", rec)
            self.emit("payment_intent.succeeded", public(pi), NO_REQUEST)
            self._subscription_payment_settled(pi, True)
            self.emit("checkout.session.async_payment_succeeded", public(rec), NO_REQUEST)
        else:
            pi["status"] = "requires_payment_method"
            pi["last_payment_error"] = {
                "type": "invalid_request_error",
                "code": "payment_method_provider_decline",
                "decline_code": "generic_decline",
                "message": "The payment was declined by the bank.",
                "payment_method": {"id": pi["payment_method"], "type": "sepa_debit"},
                "charge": pi["latest_charge"],
            }
            if charge:
                charge.update(
                    status="failed", captured=False, failure_code="generic_decline",
                    failure_message="The payment was declined by the bank.",
                )  # fmt: skip
                charge["outcome"].update(
                    network_status="declined_by_network", type="issuer_declined",
                    reason="generic_decline", seller_message="The bank returned the decline.",
                )  # fmt: skip
                self.store.save("charge", charge)
                self.emit_charge(charge)
            self.store.save("payment_intent", pi)
            self.store.save("session", rec)
            self.emit("payment_intent.payment_failed", public(pi), NO_REQUEST)
            self._subscription_payment_settled(pi, False)
            self.emit("checkout.session.async_payment_failed", public(rec), NO_REQUEST)

    # -- the clock ------------------------------------------------------------------------
    def process_due(self) -> None:
        """Expire sessions past expires_at and settle delayed payments that became due."""
        with self.lock:
            now = self.clock.now()
            for rec in self.store.due("session", now):
                if rec["status"] == "open" and rec["expires_at"] <= now:
                    self._expire(rec, NO_REQUEST)
                settlement = rec.get("_settlement")
                if settlement and settlement.get("due") is not None and settlement["due"] <= now:
                    self._settle(rec, settlement["outcome"])
            self.process_due_refunds()
            self.process_due_subscriptions()

    def advance_clock(self, seconds: float) -> int:
        self.clock.advance(seconds)
        self.process_due()
        return self.clock.now()

    # -- payment intents ------------------------------------------------------------------
    def get_payment_intent(self, pid: str, expand: list | None = None) -> dict:
        with self.lock:
            rec = fetch(self.store, "payment_intent", pid, param="intent")
            return self.render_payment_intent(rec, expand or [])

    def render_payment_intent(self, rec: dict, expand: list) -> dict:
        obj = public(rec)
        for path in expand:
            if path != "latest_charge":
                raise invalid("expand", f"This property cannot be expanded ({path}).")
            charge = self.store.get("charge", obj["latest_charge"] or "")
            if charge:
                obj["latest_charge"] = self.render_charge(charge)
        return obj

    def get_charge(self, cid: str, expand: list | None = None) -> dict:
        with self.lock:
            return self.render_charge(fetch(self.store, "charge", cid), expand)

    # -- mandates --------------------------------------------------------------------------
    def keep_mandate(self, charge: dict, livemode: bool) -> None:
        """Store the Mandate a SEPA Direct Debit charge names, so GET /v1/mandates/{id} finds
        it (Stripe makes it as the shopper accepts the debit on the hosted page)."""
        sepa = charge["payment_method_details"].get("sepa_debit") or {}
        mandate_id = sepa.get("mandate")
        if not mandate_id or self.store.get("mandate", mandate_id) is not None:
            return
        rec = objects.mandate(
            mandate_id=mandate_id, accepted_at=charge["created"], pm_id=charge["payment_method"]
        )
        self.store.save("mandate", objects.in_mode(rec, livemode))

    def get_mandate(self, mid: str) -> dict:
        with self.lock:
            return public(fetch(self.store, "mandate", mid, param="mandate"))

    def emit_charge(self, charge: dict) -> None:
        """`charge.pending`, `charge.succeeded` or `charge.failed` with the whole charge, as
        Stripe sends them: when the charge is made or settles, before the events of its
        PaymentIntent and checkout session about the same act."""
        self.emit(CHARGE_EVENTS[charge["status"]], self.render_charge(charge), NO_REQUEST)

    def list_charges(self, params: dict) -> dict:
        check_params(params, LIST_PARAMS | {"payment_intent", "customer"})
        intent = params.get("payment_intent")
        keep = all_of(
            created_test(params.get("created")),
            (lambda r: r["payment_intent"] == intent) if intent else None,
        )
        with self.lock:
            recs, position = self.store.listing("charge")
            page, has_more = paginate(recs, params, "charge", keep, position)
            data = [self.render_charge(r) for r in page]
        return objects.list_object("/v1/charges", data, has_more)

    # -- events ---------------------------------------------------------------------------
    def emit(
        self,
        type: str,
        obj: dict,
        ctx: Ctx,
        *,
        previous_attributes: dict | None = None,
        livemode: bool | None = None,
    ) -> dict:
        """Store and deliver an event about ``obj``, of its mode (``livemode`` for an object
        that shows none, a refund)."""
        evt = objects.event(
            created=self.clock.now(),
            type=type,
            obj=obj,
            request_id=ctx.request_id,
            idempotency_key=ctx.idempotency_key,
            previous_attributes=previous_attributes,
        )
        evt["livemode"] = obj["livemode"] if livemode is None else livemode
        with self.lock:
            self.store.save("event", evt)
            self.dispatcher.enqueue(evt, after=self._act)
            if self._act is not None:
                self._act.append(evt["id"])
        return evt

    @contextmanager
    def one_act(self) -> Iterator[None]:
        """The events emitted inside (the caller holds `lock`) are one act's: a charge's, then
        its intent's, then its checkout session's. Each endpoint gets them in that order, as
        Stripe usually sends them: a delivery starts once the act's previous one to the same
        endpoint was tried. Other acts' deliveries are not held up; faults still reorder."""
        if self._act is not None:  # inside an act already: part of it
            yield
            return
        self._act = []
        try:
            yield
        finally:
            self._act = None

    def render_event(self, rec: dict) -> dict:
        obj = public(rec)
        obj["pending_webhooks"] = self.dispatcher.pending_count(rec["id"])
        return obj

    def get_event(self, eid: str) -> dict:
        with self.lock:
            return self.render_event(fetch(self.store, "event", eid))

    def list_events(self, params: dict) -> dict:
        check_params(params, EVENT_LIST_PARAMS)
        types = as_list(params.get("types"), "types")
        if params.get("type"):
            if types:
                raise invalid("types", "You may not specify both `type` and `types`.")
            types = [params["type"]]
        of_type = _type_test(types) if types else None
        delivered = None
        if params.get("delivery_success") not in (None, ""):
            want = validation.boolean(params["delivery_success"], "delivery_success")

            def delivered(r: dict) -> bool:
                return self.dispatcher.delivered(r["id"]) == want

        keep = all_of(created_test(params.get("created")), of_type, delivered)
        with self.lock:
            recs, position = self.store.listing("event")
            page, has_more = paginate(recs, params, "event", keep, position)
            data = [self.render_event(r) for r in page]
        return objects.list_object("/v1/events", data, has_more)

    # -- webhook endpoints ----------------------------------------------------------------
    def create_webhook_endpoint(self, params: dict, ctx: Ctx = NO_REQUEST) -> dict:
        """An endpoint of the key's mode: it receives that mode's events only."""
        params = blank_to_none(params)
        check_params(params, {"url", "enabled_events", "description", "metadata",
                              "api_version", "connect", "expand", "secret"})  # fmt: skip
        if not params.get("url"):
            raise missing("url")
        validation.url(params["url"], "url")
        events = as_list(params.get("enabled_events"), "enabled_events")
        if not events:
            raise missing("enabled_events")
        secret = params.get("secret") or "whsec_" + secrets.token_hex(16)
        rec = objects.webhook_endpoint(
            created=self.clock.now(),
            url=params["url"],
            enabled_events=events,
            secret=secret,
            description=params.get("description"),
            metadata=params.get("metadata") if isinstance(params.get("metadata"), dict) else {},
            api_version=params.get("api_version"),
        )
        objects.in_mode(rec, ctx.livemode)
        with self.lock:
            self.store.save("webhook_endpoint", rec)
        return public(rec)  # only creation reveals the secret, as on Stripe

    def _endpoint(self, wid: str) -> dict:
        return fetch(self.store, "webhook_endpoint", wid)

    def render_endpoint(self, rec: dict) -> dict:
        obj = public(rec)
        obj.pop("secret", None)
        return obj

    def get_webhook_endpoint(self, wid: str) -> dict:
        with self.lock:
            return self.render_endpoint(self._endpoint(wid))

    def update_webhook_endpoint(self, wid: str, params: dict) -> dict:
        with self.lock:
            rec = self._endpoint(wid)
            check_params(params, {"url", "enabled_events", "description", "metadata",
                                  "disabled", "expand"})  # fmt: skip
            if params.get("url"):
                rec["url"] = validation.url(params["url"], "url")
            if "enabled_events" in params:
                rec["enabled_events"] = as_list(params["enabled_events"], "enabled_events")
            if "description" in params:
                rec["description"] = params["description"] or None
            if isinstance(params.get("metadata"), dict):
                rec["metadata"].update(params["metadata"])
            if "disabled" in params:
                rec["status"] = "disabled" if params["disabled"] == "true" else "enabled"
            self.store.save("webhook_endpoint", rec)
            return self.render_endpoint(rec)

    def delete_webhook_endpoint(self, wid: str) -> dict:
        with self.lock:
            self._endpoint(wid)
            self.store.delete("webhook_endpoint", wid)
        return {"id": wid, "object": "webhook_endpoint", "deleted": True}

    def list_webhook_endpoints(self, params: dict) -> dict:
        check_params(params, PAGE_PARAMS)
        with self.lock:
            page, has_more = paginate(
                self.store.newest_first("webhook_endpoint"), params, "webhook_endpoint"
            )
            data = [self.render_endpoint(r) for r in page]
        return objects.list_object("/v1/webhook_endpoints", data, has_more)

    def endpoints(self, livemode: bool) -> list[dict]:
        """The enabled webhook endpoints of a mode."""
        with self.lock:
            return [
                r
                for r in self.store.newest_first("webhook_endpoint")
                if r["status"] == "enabled" and r["livemode"] == livemode
            ]


# The event a charge's status announces (a SEPA debit's charge is pending until it settles).
CHARGE_EVENTS = {
    "pending": "charge.pending",
    "succeeded": "charge.succeeded",
    "failed": "charge.failed",
}


def _method_types(params: dict, param: str) -> list[str]:
    """``allowed_/excluded_payment_method_types``: each one of Stripe's method types."""
    types = as_list(params.get(param), param)
    for i, value in enumerate(types):
        if not isinstance(value, str) or value not in validation.PAYMENT_METHOD_TYPES:
            raise invalid(
                f"{param}[{i}]",
                f"Invalid {param}[{i}]: must be one of "
                + validation.one_of(sorted(validation.PAYMENT_METHOD_TYPES)),
            )
    return types


def _session_falls_due(rec: dict) -> int | None:
    """When the clock next changes a session: its expiry while open, else a delayed payment's
    settlement (None: nothing is scheduled)."""
    settlement = rec.get("_settlement")
    if settlement and settlement.get("due") is not None:
        return settlement["due"]
    return rec["expires_at"] if rec["status"] == "open" else None


def _type_test(patterns: list[str]) -> Callable[[dict], bool]:
    """Event types as Stripe matches them: exact names, ``*`` or a ``prefix.*`` wildcard."""
    if "*" in patterns:
        return lambda r: True
    exact = {p for p in patterns if not p.endswith(".*")}
    prefixes = tuple(p[:-1] for p in patterns if p.endswith(".*"))
    return lambda r: r["type"] in exact or r["type"].startswith(prefixes)
