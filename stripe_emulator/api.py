"""The WSGI app: Stripe's /v1 API, the /_emulator control routes and the hosted checkout page."""

from __future__ import annotations

import json
import logging
import math
import random
import secrets
import string
import threading
import time

import orjson
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import API_VERSION, forms, objects
from .common import Ctx, check_params, request_livemode
from .emulator import Emulator
from .errors import StripeErrorResponse, invalid, missing, no_such, not_found_route
from .hosted import handle
from .validation import json_boolean as _boolean
from .validation import json_kind as kind
from .validation import json_number as _number
from .validation import json_string as _string

log = logging.getLogger("stripe_emulator.api")

_ALNUM = string.ascii_letters + string.digits

API_RULES = Map(
    [
        Rule("/v1/checkout/sessions", methods=["POST"], endpoint="create_session"),
        Rule("/v1/checkout/sessions", methods=["GET"], endpoint="list_sessions"),
        Rule("/v1/checkout/sessions/<sid>", methods=["GET"], endpoint="get_session"),
        Rule("/v1/checkout/sessions/<sid>", methods=["POST"], endpoint="update_session"),
        Rule("/v1/checkout/sessions/<sid>/expire", methods=["POST"], endpoint="expire_session"),
        Rule("/v1/checkout/sessions/<sid>/line_items", methods=["GET"], endpoint="line_items"),
        Rule("/v1/payment_intents/<pid>", methods=["GET"], endpoint="get_payment_intent"),
        Rule("/v1/charges", methods=["GET"], endpoint="list_charges"),
        Rule("/v1/charges/<cid>", methods=["GET"], endpoint="get_charge"),
        Rule("/v1/mandates/<mid>", methods=["GET"], endpoint="get_mandate"),
        Rule("/v1/refunds", methods=["POST"], endpoint="create_refund"),
        Rule("/v1/refunds", methods=["GET"], endpoint="list_refunds"),
        Rule("/v1/refunds/<rid>", methods=["GET"], endpoint="get_refund"),
        Rule("/v1/refunds/<rid>", methods=["POST"], endpoint="update_refund"),
        Rule("/v1/disputes", methods=["GET"], endpoint="list_disputes"),
        Rule("/v1/disputes/<did>", methods=["GET"], endpoint="get_dispute"),
        Rule("/v1/disputes/<did>", methods=["POST"], endpoint="update_dispute"),
        Rule("/v1/disputes/<did>/close", methods=["POST"], endpoint="close_dispute"),
        Rule("/v1/subscriptions", methods=["GET"], endpoint="list_subscriptions"),
        Rule("/v1/subscriptions/<sid>", methods=["GET"], endpoint="get_subscription"),
        Rule("/v1/subscriptions/<sid>", methods=["POST"], endpoint="update_subscription"),
        Rule("/v1/subscriptions/<sid>", methods=["DELETE"], endpoint="cancel_subscription"),
        Rule("/v1/invoices", methods=["GET"], endpoint="list_invoices"),
        Rule("/v1/invoices/<iid>", methods=["GET"], endpoint="get_invoice"),
        Rule("/v1/invoices/<iid>/lines", methods=["GET"], endpoint="invoice_lines"),
        Rule("/v1/events", methods=["GET"], endpoint="list_events"),
        Rule("/v1/events/<eid>", methods=["GET"], endpoint="get_event"),
        Rule("/v1/webhook_endpoints", methods=["POST"], endpoint="create_endpoint"),
        Rule("/v1/webhook_endpoints", methods=["GET"], endpoint="list_endpoints"),
        Rule("/v1/webhook_endpoints/<wid>", methods=["GET"], endpoint="get_endpoint"),
        Rule("/v1/webhook_endpoints/<wid>", methods=["POST"], endpoint="update_endpoint"),
        Rule("/v1/webhook_endpoints/<wid>", methods=["DELETE"], endpoint="delete_endpoint"),
        Rule("/v1/balance", methods=["GET"], endpoint="get_balance"),
    ]
)

CONTROL_RULES = Map(
    [
        Rule("/_emulator/reset", methods=["POST"], endpoint="reset"),
        Rule("/_emulator/checkout/sessions/<sid>/pay", methods=["POST"], endpoint="pay"),
        Rule("/_emulator/checkout/sessions/pay", methods=["POST"], endpoint="pay_many"),
        Rule("/_emulator/checkout/sessions", methods=["POST"], endpoint="create_many"),
        Rule("/_emulator/checkout/sessions/<sid>/settle", methods=["POST"], endpoint="settle"),
        Rule("/_emulator/refunds/<rid>/succeed", methods=["POST"], endpoint="refund_succeed"),
        Rule("/_emulator/refunds/<rid>/fail", methods=["POST"], endpoint="refund_fail"),
        Rule("/_emulator/disputes", methods=["POST"], endpoint="dispute_open"),
        Rule("/_emulator/disputes/<did>/update", methods=["POST"], endpoint="dispute_update"),
        Rule("/_emulator/disputes/<did>/close", methods=["POST"], endpoint="dispute_close"),
        Rule(
            "/_emulator/subscriptions/<sid>/fail_next_renewal",
            methods=["POST"],
            endpoint="fail_next_renewal",
        ),
        Rule("/_emulator/subscriptions/<sid>/renew", methods=["POST"], endpoint="renew"),
        Rule("/_emulator/invoices/<iid>/pay", methods=["POST"], endpoint="pay_invoice"),
        Rule("/_emulator/clock", methods=["GET"], endpoint="clock"),
        Rule("/_emulator/clock/advance", methods=["POST"], endpoint="advance"),
        Rule("/_emulator/webhook_endpoints", methods=["POST"], endpoint="add_endpoint"),
        Rule("/_emulator/deliveries", methods=["GET"], endpoint="deliveries"),
        Rule("/_emulator/requests", methods=["GET"], endpoint="requests"),
        Rule("/_emulator/deliveries/pause", methods=["POST"], endpoint="pause"),
        Rule("/_emulator/deliveries/resume", methods=["POST"], endpoint="resume"),
        Rule("/_emulator/events/<eid>/redeliver", methods=["POST"], endpoint="redeliver"),
        Rule("/_emulator/faults", methods=["POST"], endpoint="add_fault"),
        Rule("/_emulator/faults", methods=["GET"], endpoint="list_faults"),
        Rule("/_emulator/faults", methods=["DELETE"], endpoint="clear_faults"),
        Rule("/_emulator/latency", methods=["POST"], endpoint="latency"),
        Rule("/_emulator/health", methods=["GET"], endpoint="health"),
    ]
)

# How _run calls the Emulator for the /v1 routes of the two common shapes (the others are
# written out in _run). Routes whose method takes the decoded params as they are, and checks
# them: endpoint -> (method, the URL argument passed before the params or None, whether the
# request's Ctx follows the params).
PARAMS_ROUTES = {
    "create_session": (Emulator.create_session, None, True),
    "list_sessions": (Emulator.list_sessions, None, False),
    "update_session": (Emulator.update_session, "sid", False),
    "line_items": (Emulator.list_line_items, "sid", False),
    "list_charges": (Emulator.list_charges, None, False),
    "create_refund": (Emulator.create_refund, None, True),
    "list_refunds": (Emulator.list_refunds, None, False),
    "update_refund": (Emulator.update_refund, "rid", False),
    "list_disputes": (Emulator.list_disputes, None, False),
    "update_dispute": (Emulator.update_dispute, "did", True),
    "close_dispute": (Emulator.close_dispute, "did", True),
    "list_subscriptions": (Emulator.list_subscriptions, None, False),
    "update_subscription": (Emulator.update_subscription, "sid", True),
    "cancel_subscription": (Emulator.cancel_subscription, "sid", True),
    "list_invoices": (Emulator.list_invoices, None, False),
    "invoice_lines": (Emulator.list_invoice_lines, "iid", False),
    "list_events": (Emulator.list_events, None, False),
    "create_endpoint": (Emulator.create_webhook_endpoint, None, True),
    "list_endpoints": (Emulator.list_webhook_endpoints, None, False),
    "update_endpoint": (Emulator.update_webhook_endpoint, "wid", False),
}
# Retrievals, which accept no parameter but expand[]: endpoint -> (method, the URL argument,
# whether the method takes the expand list; the others accept it and leave it unused).
RETRIEVE_ROUTES = {
    "get_session": (Emulator.get_session, "sid", True),
    "get_charge": (Emulator.get_charge, "cid", True),
    "get_refund": (Emulator.get_refund, "rid", True),
    "get_dispute": (Emulator.get_dispute, "did", True),
    "get_subscription": (Emulator.get_subscription, "sid", True),
    "get_invoice": (Emulator.get_invoice, "iid", True),
    "get_event": (Emulator.get_event, "eid", False),
    "get_mandate": (Emulator.get_mandate, "mid", False),
    "get_endpoint": (Emulator.get_webhook_endpoint, "wid", False),
}

# Keys as Stripe issues them: secret or restricted, of test or live mode (the rest of a key is
# not checked: any such key is the emulator's one account).
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")

NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


def request_id() -> str:
    return "req_" + "".join(secrets.choice(_ALNUM) for _ in range(14))


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    # Pretty-printed like Stripe's answers (the same bytes for ASCII), by orjson: json.dumps
    # with an indent falls back to the pure-Python encoder, 12 ms per list page of 100 events
    # against 0.16 ms, paid on every page reconciliation lists.
    text = orjson.dumps(body, option=orjson.OPT_INDENT_2)
    resp = Response(text, status=status, mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def latency_seconds(mean_ms: float, p99_ms: float) -> float:
    """A log-normal sample with the given mean and 99th percentile (0 when disabled)."""
    if mean_ms <= 0:
        return 0.0
    if p99_ms <= mean_ms:
        return mean_ms / 1000
    # For LogNormal(mu, s): mean = e^(mu + s²/2), p99 = e^(mu + 2.326 s); solve for s.
    z = 2.326
    disc = z * z - 2 * math.log(p99_ms / mean_ms)
    sigma = z - math.sqrt(disc) if disc > 0 else z
    mu = math.log(mean_ms) - sigma * sigma / 2
    return random.lognormvariate(mu, sigma) / 1000


def control_body(request: Request) -> dict:
    """A control route's input: a JSON object (or a form); anything else is a 400."""
    raw = request.get_data()
    if not raw.strip():
        return {}
    if request.mimetype == "application/x-www-form-urlencoded":
        body = forms.decode(raw)
    else:
        try:
            body = json.loads(raw)
        except ValueError:
            raise invalid("body", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise invalid("body", f"The request body must be a JSON object, not {kind(body)}.")
    return body


# One call creates or pays a harness's whole batch: a thousand sessions in one request instead
# of a thousand connections to this single-threaded-at-heart server.
MAX_BATCH = 1000


def _pay_options(body: dict) -> dict:
    """The pay route's options (card, iban, outcome, ...), checked."""
    for key in ("card", "iban", "outcome", "email", "name", "settle_outcome", "wallet"):
        _string(body, key)
    three_ds = body.get("three_d_secure", "approve")
    if three_ds is not None and three_ds not in ("approve", "deny"):
        raise invalid("three_d_secure", "three_d_secure must be approve, deny or null (ask).")
    return {
        "card": body.get("card"),
        "iban": body.get("iban"),
        "outcome": body.get("outcome"),
        "email": body.get("email"),
        "name": body.get("name"),
        "three_d_secure": three_ds,
        "settle_outcome": body.get("settle_outcome"),
        "wallet": body.get("wallet"),
    }


def _pay_one(emu: Emulator, sid: str, options: dict) -> dict:
    """One session of a pay_many call: its outcome, or the error that one session got."""
    try:
        result = emu.pay(sid, **options)
    except StripeErrorResponse as err:
        return {"id": sid, "completed": False, "error": err.body()["error"]}
    completed = not result["declined"] and not result.get("requires_action")
    return {
        "id": sid,
        "completed": completed,
        "declined": result["declined"],
        "decline_code": result["decline_code"],
        "requires_action": bool(result.get("requires_action")),
    }


class IdempotencyCache:
    """Stored (status, body) per (api key, Idempotency-Key); keys in flight answer 409."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.lock = threading.Lock()
        self.in_flight: set[str] = set()

    def begin(self, scope: str, fingerprint: dict, key: str):
        """Return a stored record to replay, or None after marking the key in flight."""
        with self.lock:
            rec = self.emu.store.get("idempotency", scope)
            if rec is not None:
                if rec["fingerprint"] != fingerprint:
                    raise StripeErrorResponse(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                        type="idempotency_error",
                        save_idempotent=False,
                    )
                return rec
            if scope in self.in_flight:
                raise StripeErrorResponse(
                    409,
                    "There is currently another in-progress request using this Idempotent Key "
                    "(that probably means you submitted twice, and the other request is still "
                    f"going through): {key}. Please try again later.",
                    type="idempotency_error",
                    code="idempotency_key_in_use",
                    save_idempotent=False,
                )
            self.in_flight.add(scope)
            return None

    def finish(self, scope: str, fingerprint: dict, status: int | None, body, rid: str) -> None:
        with self.lock:
            self.in_flight.discard(scope)
            if status is not None:
                self.emu.store.save(
                    "idempotency",
                    {
                        "id": scope,
                        "fingerprint": fingerprint,
                        "status": status,
                        "body": body,
                        "request_id": rid,
                        "created": self.emu.clock.now(),
                    },
                )


class EmulatorApp:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.idem = IdempotencyCache(emu)

    def __call__(self, environ, start_response):
        request = Request(environ)
        path = request.path
        try:
            if path.startswith("/v1/"):
                resp = self.api(request)
            elif path.startswith("/_emulator/"):
                resp = self.control(request)
            elif path.startswith("/c/pay/"):
                resp = handle(self.emu, request)
            elif path in ("/", "/favicon.ico"):
                resp = Response("Stripe emulator\n", mimetype="text/plain")
            else:
                resp = json_response(not_found_route(request.method, path).body(), 404)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, path)
            resp = json_response(
                {"error": {"type": "api_error", "message": "An unknown error occurred."}}, 500
            )
        if "Request-Id" not in resp.headers:
            resp.headers["Request-Id"] = request_id()
        return resp(environ, start_response)

    # -- /v1 ------------------------------------------------------------------------------
    def api(self, request: Request) -> Response:
        """A /v1 request, served in its key's mode and recorded as the emulator saw it."""
        token = request_livemode.set(None)
        try:
            resp = self._api(request)
        finally:
            livemode = request_livemode.get()
            request_livemode.reset(token)
        self.emu.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "livemode": livemode,  # None: no valid key
                "stripe_version": request.headers.get("Stripe-Version"),
                "idempotency_key": request.headers.get("Idempotency-Key"),
                "status": resp.status_code,
            }
        )
        return resp

    def _api(self, request: Request) -> Response:
        rid = request_id()
        headers = {"Request-Id": rid, "Stripe-Version": request.headers.get(
            "Stripe-Version", API_VERSION)}  # fmt: skip
        cfg = self.emu.config
        delay = latency_seconds(cfg.latency_mean_ms, cfg.latency_p99_ms)
        if delay:
            time.sleep(delay)
        try:
            api_key = self._authenticate(request)
            livemode = api_key.startswith(LIVE_KEY_PREFIXES)
            request_livemode.set(livemode)
            adapter = API_RULES.bind_to_environ(request.environ)
            try:
                endpoint, args = adapter.match()
            except HTTPException:
                raise not_found_route(request.method, request.path) from None
            fault = self.emu.faults.take_api(request.method, request.path)
            if fault and fault["kind"] == "http_500":
                raise StripeErrorResponse(
                    500, "An unknown error occurred (injected fault).", type="api_error",
                    save_idempotent=False,
                )  # fmt: skip
            if fault and fault["kind"] == "http_400":
                raise StripeErrorResponse(
                    400, fault["message"], type="invalid_request_error", code=fault["code"],
                    save_idempotent=False,
                )  # fmt: skip
            if fault and fault["kind"] == "http_429":
                raise StripeErrorResponse(
                    429,
                    "Too many requests hit the API too quickly (injected fault).",
                    code="rate_limit",
                    save_idempotent=False,
                )
            params = forms.decode(request.query_string)
            if request.method == "POST":
                params.update(forms.decode(request.get_data()))
            key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
            if key is not None and len(key) > 255:
                raise StripeErrorResponse(
                    400,
                    "Idempotency-Key must be at most 255 characters long.",
                    type="idempotency_error",
                    save_idempotent=False,
                )
            ctx = Ctx(rid, key, request.headers.get("Stripe-Version"), livemode=livemode)
            if fault and fault["kind"] == "hang":
                ctx.hang = fault["seconds"]
            lose = bool(fault and fault["kind"] == "lose_response")
            if not key:
                status, body = self._run(endpoint, args, params, ctx)
            else:
                scope = f"{api_key}:{key}"
                fingerprint = {"method": request.method, "path": request.path, "params": params}
                stored = self.idem.begin(scope, fingerprint, key)
                if stored is not None:
                    headers["Idempotent-Replayed"] = "true"
                    headers["Original-Request"] = stored["request_id"]
                    return json_response(stored["body"], stored["status"], headers)
                saved_status, body = None, None
                try:
                    try:
                        status, body = self._run(endpoint, args, params, ctx)
                        saved_status = status
                    except StripeErrorResponse as err:
                        if err.save_idempotent:
                            saved_status, body = err.status, err.body()
                        raise
                finally:
                    self.idem.finish(
                        scope, fingerprint, saved_status, body if saved_status else None, rid
                    )
            if lose:
                # The work is done and stored; the client only sees a failure.
                raise StripeErrorResponse(
                    500, "An unknown error occurred (injected lost response).", type="api_error"
                )
            return json_response(body, status, headers)
        except StripeErrorResponse as err:
            headers.update(err.headers)
            return json_response(err.body(), err.status, headers)

    def _authenticate(self, request: Request) -> str:
        auth = request.headers.get("Authorization", "")
        key = None
        if auth.startswith("Bearer "):
            key = auth[len("Bearer ") :].strip()
        elif request.authorization and request.authorization.username:
            key = request.authorization.username
        if not key:
            raise StripeErrorResponse(401, NO_KEY)
        if not key.startswith(TEST_KEY_PREFIXES + LIVE_KEY_PREFIXES) or len(key) <= 8:
            shown = key[:8] + "*" * max(len(key) - 12, 4) + key[-4:] if len(key) > 12 else key
            raise StripeErrorResponse(401, f"Invalid API Key provided: {shown}")
        return key

    def _create_one(self, raw: str, livemode: bool) -> dict:
        """One body of a create_many call, taken as POST /v1/checkout/sessions takes it (no
        Idempotency-Key): the session it made, or the error that body got."""
        ctx = Ctx(request_id(), livemode=livemode)
        try:
            _, session = self._run("create_session", {}, forms.decode(raw), ctx)
        except StripeErrorResponse as err:
            return {"error": err.body()["error"]}
        return {"session": session}

    def _run(self, endpoint: str, args: dict, params: dict, ctx: Ctx) -> tuple[int, dict]:
        emu = self.emu
        if ctx.hang:
            # Inside the idempotency window: a client retrying after its timeout sees a 409.
            time.sleep(ctx.hang)
        expand = params.get("expand") or []
        if isinstance(expand, str):
            expand = [expand]

        if endpoint in PARAMS_ROUTES:
            method, arg, with_ctx = PARAMS_ROUTES[endpoint]
            before = [args[arg]] if arg else []
            return 200, method(emu, *before, params, *([ctx] if with_ctx else []))
        if endpoint in RETRIEVE_ROUTES:
            method, arg, with_expand = RETRIEVE_ROUTES[endpoint]
            check_params(params, {"expand"})
            return 200, method(emu, args[arg], expand) if with_expand else method(emu, args[arg])
        if endpoint == "expire_session":
            check_params(params, {"expand"})
            obj = emu.expire_session(args["sid"], ctx)
            return 200, emu.get_session(obj["id"], expand) if expand else obj
        if endpoint == "get_payment_intent":
            check_params(params, {"expand", "client_secret"})
            return 200, emu.get_payment_intent(args["pid"], expand)
        if endpoint == "delete_endpoint":
            return 200, emu.delete_webhook_endpoint(args["wid"])
        if endpoint == "get_balance":
            check_params(params, {"expand"})
            return 200, objects.balance(ctx.livemode)
        raise AssertionError(endpoint)

    # -- /_emulator -----------------------------------------------------------------------
    def control(self, request: Request) -> Response:
        adapter = CONTROL_RULES.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except HTTPException:
            return json_response(not_found_route(request.method, request.path).body(), 404)
        try:
            body = control_body(request)
            return json_response(self._control(endpoint, args, body, request))
        except StripeErrorResponse as err:
            return json_response(err.body(), err.status)

    def _control(self, endpoint: str, args: dict, body: dict, request: Request):
        emu = self.emu
        if endpoint == "health":
            return {"ok": True}
        if endpoint == "reset":
            emu.reset()
            return {"ok": True}
        if endpoint == "pay":
            return emu.pay(args["sid"], **_pay_options(body))
        if endpoint == "pay_many":
            ids = body.get("ids")
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise invalid("ids", "ids must be a non-empty list of Checkout Session ids.")
            if len(ids) > MAX_BATCH:
                raise invalid("ids", f"ids may name at most {MAX_BATCH} sessions.")
            options = _pay_options(body)
            return {"results": [_pay_one(emu, sid, options) for sid in ids]}
        if endpoint == "create_many":
            forms_ = body.get("sessions")
            if (
                not isinstance(forms_, list)
                or not forms_
                or not all(isinstance(f, str) for f in forms_)
            ):
                raise invalid(
                    "sessions", "sessions must be a non-empty list of form-encoded bodies."
                )
            if len(forms_) > MAX_BATCH:
                raise invalid("sessions", f"sessions may hold at most {MAX_BATCH} bodies.")
            livemode = _boolean(body, "livemode")
            return {"results": [self._create_one(raw, livemode) for raw in forms_]}
        if endpoint == "settle":
            return {"session": emu.settle(args["sid"], _string(body, "outcome"))}
        if endpoint == "refund_succeed":
            return {"refund": emu.succeed_refund(args["rid"])}
        if endpoint == "refund_fail":
            return {"refund": emu.fail_refund(args["rid"], _string(body, "failure_reason"))}
        if endpoint == "dispute_open":
            return {"dispute": emu.open_dispute(body)}
        if endpoint == "dispute_update":
            return {"dispute": emu.move_dispute(args["did"], _string(body, "status"))}
        if endpoint == "dispute_close":
            return {"dispute": emu.decide_dispute(args["did"], _string(body, "outcome"))}
        if endpoint == "fail_next_renewal":
            count = _number(body, "count", 1, integer=True, minimum=1)
            return emu.fail_next_renewal(args["sid"], count, _string(body, "decline_code"))
        if endpoint == "renew":
            return emu.renew_now(args["sid"])
        if endpoint == "pay_invoice":
            return emu.pay_invoice(
                args["iid"], _string(body, "outcome"), _string(body, "decline_code")
            )
        if endpoint == "clock":
            return {"now": emu.clock.now()}
        if endpoint == "advance":
            return {"now": emu.advance_clock(_number(body, "seconds", 0))}
        if endpoint == "add_endpoint":
            url = _string(body, "url")
            if not url:
                raise missing("url")
            events = body.get("enabled_events") or ["*"]
            if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
                raise invalid("enabled_events", "enabled_events must be a list of event types.")
            return emu.create_webhook_endpoint(
                {"url": url, "secret": _string(body, "secret"), "enabled_events": events},
                Ctx(livemode=_boolean(body, "livemode")),
            )
        if endpoint == "deliveries":
            return {
                "data": emu.dispatcher.list(
                    request.args.get("event_id") or None, request.args.get("type") or None
                )
            }
        if endpoint == "requests":
            return {"data": list(emu.requests)[::-1]}  # newest first
        if endpoint == "pause":
            emu.dispatcher.pause()
            return {"paused": True}
        if endpoint == "resume":
            emu.dispatcher.resume()
            return {"paused": False}
        if endpoint == "redeliver":
            with emu.lock:
                evt = emu.store.get("event", args["eid"])
                if evt is None:
                    raise no_such("event", args["eid"])
                return {"data": emu.dispatcher.redeliver(evt)}
        if endpoint == "add_fault":
            return emu.faults.add(body)
        if endpoint == "list_faults":
            return {"data": emu.faults.list()}
        if endpoint == "clear_faults":
            emu.faults.clear()
            return {"data": []}
        if endpoint == "latency":
            mean = _number(body, "mean_ms", 0, minimum=0)
            p99 = _number(body, "p99_ms", 0, minimum=0)
            emu.config.latency_mean_ms, emu.config.latency_p99_ms = mean, p99
            return {"mean_ms": emu.config.latency_mean_ms, "p99_ms": emu.config.latency_p99_ms}
        raise AssertionError(endpoint)
