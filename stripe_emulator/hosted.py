"""The hosted checkout page at ``/c/pay/{id}``: server-rendered, no external assets, accessible."""

from __future__ import annotations

import html
import logging
import re

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from .common import money
from .errors import StripeErrorResponse

log = logging.getLogger("stripe_emulator.hosted")

PLACEHOLDER = "{CHECKOUT_SESSION_ID}"

CSS = """
*{box-sizing:border-box}body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f8fa;
color:#1a1f36}main{max-width:32rem;margin:2rem auto;background:#fff;padding:2rem;
border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.15)}h1{font-size:1.4rem;margin-top:0}
table{width:100%;border-collapse:collapse;margin-bottom:1rem}th,td{text-align:left;padding:.3rem 0}
td.num,th.num{text-align:right}tfoot th,tfoot td{border-top:1px solid #ccc;font-weight:bold}
fieldset{border:1px solid #ccc;border-radius:6px;margin:0 0 1rem;padding:.8rem}
label{display:block;margin:.5rem 0 .2rem;font-weight:600}
input[type=text],input[type=email],select{width:100%;padding:.5rem;font-size:1rem;
border:1px solid #888;border-radius:4px}.radio label{display:inline;font-weight:normal}
.row{display:flex;gap:1rem}.row>div{flex:1}
button{background:#0a5ad4;color:#fff;border:0;border-radius:6px;padding:.75rem 1.2rem;
font-size:1rem;width:100%;cursor:pointer;margin-top:.5rem}button.secondary{background:#555}
:focus-visible{outline:3px solid #f0a500;outline-offset:2px}
.error{background:#fde8e8;border:1px solid #c0392b;color:#8b1a1a;padding:.6rem;border-radius:4px}
.notice{background:#eef3fb;border:1px solid #0a5ad4;padding:.6rem;border-radius:4px}
.hint{color:#555;font-size:.85rem;margin:.2rem 0 0}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
"""

# Progressive enhancement only: without it both method sections stay visible and usable.
JS = """
(function(){var r=document.querySelectorAll('input[name=method]');function u(){
r.forEach(function(x){var s=document.getElementById('section-'+x.value);
if(s){s.hidden=!x.checked;}});}r.forEach(function(x){x.addEventListener('change',u);});u();})();
"""


def success_redirect(session: dict) -> str | None:
    url = session.get("success_url")
    return url.replace(PLACEHOLDER, session["id"]) if url else None


def page(title: str, body: str, status: int = 200) -> Response:
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    resp = Response(doc, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def handle(emu, request: Request) -> Response:
    parts = request.path.split("/")
    sid = parts[3] if len(parts) > 3 else ""
    try:
        rec = emu.get_session(sid, ["line_items"])
    except StripeErrorResponse:
        return page("Not found", "<h1>Checkout session not found</h1>", 404)
    if request.method == "POST":
        return pay(emu, rec, request.form)
    if request.method not in ("GET", "HEAD"):
        return page("Method not allowed", "<h1>Method not allowed</h1>", 405)
    if rec["status"] != "open":
        return closed(rec)
    return checkout_form(rec)


def closed(rec: dict, status: int = 200) -> Response:
    if rec["status"] == "expired":
        msg = "This checkout session has expired. No payment can be made."
        title = "Checkout session expired"
    else:
        msg = "This checkout session is already complete. No further payment can be made."
        title = "Checkout session complete"
    back = ""
    if rec.get("cancel_url"):
        back = f'<p><a href="{html.escape(rec["cancel_url"])}">Return to the merchant</a></p>'
    body = f'<h1>{title}</h1><p class="notice" role="status">{msg}</p>{back}'
    return page(title, body, status)


def summary(rec: dict) -> str:
    rows = []
    for item in rec["line_items"]["data"]:
        recurring = (item.get("price") or {}).get("recurring")
        every = ""
        if recurring:
            n = recurring["interval_count"]
            every = (
                f" (every {n} {recurring['interval']}s)"
                if n > 1
                else (f" (per {recurring['interval']})")
            )
        rows.append(
            f"<tr><td>{html.escape((item['description'] or '') + every)}</td>"
            f'<td class="num">{item["quantity"]}</td>'
            f'<td class="num">{money(item["amount_total"], item["currency"])}</td></tr>'
        )
    total = money(rec["amount_total"], rec["currency"])
    return (
        "<table><caption class='visually-hidden'>Order summary</caption>"
        '<thead><tr><th scope="col">Item</th><th scope="col" class="num">Qty</th>'
        '<th scope="col" class="num">Amount</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody>"
        f'<tfoot><tr><th scope="row" colspan="2">Total due</th>'
        f'<td class="num" id="total">{total}</td></tr></tfoot></table>'
    )


def checkout_form(rec: dict, *, error: str | None = None, values=None, status: int = 200):
    values = values or {}
    esc = html.escape
    methods = rec["payment_method_types"]
    chosen = values.get("method") or methods[0]
    email = values.get("email") or rec.get("customer_email") or ""
    back = ""
    if rec.get("cancel_url"):
        back = f'<p><a href="{esc(rec["cancel_url"])}" id="back">← Back to the merchant</a></p>'
    err = ""
    if error:
        err = f'<div class="error" role="alert" id="error">{esc(error)}</div>'
    radios = ""
    if len(methods) > 1:
        labels = {"card": "Card", "sepa_debit": "SEPA Direct Debit (settles later)"}
        items = []
        for m in methods:
            if m not in labels:
                continue
            checked = " checked" if m == chosen else ""
            items.append(
                f'<div class="radio"><input type="radio" name="method" id="method-{m}" '
                f'value="{m}"{checked}> <label for="method-{m}">{labels[m]}</label></div>'
            )
        radios = f"<fieldset><legend>Payment method</legend>{''.join(items)}</fieldset>"
    else:
        radios = f'<input type="hidden" name="method" value="{esc(methods[0])}">'
    sections = []
    if "card" in methods:
        sections.append(
            '<fieldset id="section-card"><legend>Card details</legend>'
            '<label for="card_number">Card number</label>'
            '<input type="text" id="card_number" name="card_number" inputmode="numeric" '
            'autocomplete="cc-number" placeholder="4242 4242 4242 4242" '
            f'value="{esc(values.get("card_number", ""))}">'
            '<div class="row"><div><label for="exp">Expiry (MM / YY)</label>'
            '<input type="text" id="exp" name="exp" autocomplete="cc-exp" placeholder="12 / 34" '
            f'value="{esc(values.get("exp", ""))}"></div>'
            '<div><label for="cvc">CVC</label>'
            '<input type="text" id="cvc" name="cvc" inputmode="numeric" autocomplete="cc-csc" '
            'placeholder="123"></div></div>'
            '<label for="cardholder">Name on card</label>'
            '<input type="text" id="cardholder" name="name" autocomplete="cc-name" '
            f'value="{esc(values.get("name", ""))}">'
            '<label for="wallet">Wallet (test)</label>'
            f'<select id="wallet" name="wallet">{_wallet_options(values.get("wallet", ""))}'
            "</select>"
            "</fieldset>"
        )
    if "sepa_debit" in methods:
        outcome = values.get("sepa_outcome", "auto")
        opts = [("auto", "Decided by the test IBAN"), ("succeeded", "Succeeds"),
                ("failed", "Fails")]  # fmt: skip
        options = "".join(
            f'<option value="{v}"{" selected" if v == outcome else ""}>{t}</option>'
            for v, t in opts
        )
        sections.append(
            '<fieldset id="section-sepa_debit"><legend>SEPA Direct Debit</legend>'
            '<label for="iban">IBAN</label>'
            '<input type="text" id="iban" name="iban" autocomplete="off" '
            'aria-describedby="iban-hint" placeholder="DE89 3704 0044 0532 0130 00" '
            f'value="{esc(values.get("iban", ""))}">'
            '<p class="hint" id="iban-hint">Test IBANs: DE89370400440532013000 succeeds, '
            "DE62370400440532013001 fails.</p>"
            '<label for="sepa_outcome">Simulated outcome</label>'
            f'<select id="sepa_outcome" name="sepa_outcome">{options}</select>'
            "</fieldset>"
        )
    verb = "Subscribe" if rec["mode"] == "subscription" else "Pay"
    pay_label = f"{verb} {money(rec['amount_total'], rec['currency'])}".strip()
    body = (
        f"{back}<h1>Checkout</h1>{summary(rec)}{err}"
        f'<form method="post" action="/c/pay/{esc(rec["id"])}" novalidate>'
        '<label for="email">Email</label>'
        '<input type="email" id="email" name="email" autocomplete="email" required '
        f'value="{esc(email)}">'
        f"{radios}{''.join(sections)}"
        f'<button type="submit" id="pay">{esc(pay_label)}</button></form>'
        f"<script>{JS}</script>"
    )
    return page("Checkout", body, status)


WALLET_LABELS = {"": "None (card typed in)", "apple_pay": "Apple Pay", "google_pay": "Google Pay",
                 "link": "Link"}  # fmt: skip


def _wallet_options(chosen: str) -> str:
    return "".join(
        f'<option value="{v}"{" selected" if v == chosen else ""}>{t}</option>'
        for v, t in WALLET_LABELS.items()
    )


def _expiry(text: str) -> tuple[int, int] | None:
    """ "MM / YY" (or MM/YYYY) as typed, or None when it cannot be read (any expiry is taken)."""
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", text or "")
    if not match or not 1 <= int(match[1]) <= 12:
        return None
    year = int(match[2])
    return int(match[1]), year + 2000 if year < 100 else year


def three_d_secure(rec: dict, form) -> Response:
    esc = html.escape
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{esc(form.get(k, ""))}">'
        for k in ("email", "method", "card_number", "exp", "name", "wallet")
    )
    body = (
        "<h1>Authenticate your payment</h1>"
        '<p role="status">Your bank asks you to confirm this payment of '
        f"{money(rec['amount_total'], rec['currency'])} (3-D Secure test).</p>"
        f'<form method="post" action="/c/pay/{esc(rec["id"])}">{hidden}'
        '<button type="submit" name="three_d_secure" value="approve" id="approve">'
        "Complete authentication</button>"
        '<button type="submit" name="three_d_secure" value="deny" id="deny" class="secondary">'
        "Fail authentication</button></form>"
    )
    return page("Authenticate your payment", body)


def pay(emu, rec: dict, form) -> Response:
    if rec["status"] != "open":
        return closed(rec, 400)
    method = form.get("method") or rec["payment_method_types"][0]
    email = (form.get("email") or "").strip()
    values = form.to_dict()
    if not email or "@" not in email:
        return checkout_form(rec, error="Enter a valid email address.", values=values, status=400)
    kwargs = {"email": email, "name": (form.get("name") or "").strip() or None}
    if method == "sepa_debit":
        if not form.get("iban", "").strip():
            return checkout_form(rec, error="Enter your IBAN.", values=values, status=400)
        outcome = form.get("sepa_outcome", "auto")
        explicit = outcome if outcome in ("succeeded", "failed") else None
        kwargs.update(iban=form["iban"], settle_outcome=explicit)
    else:
        if not form.get("card_number", "").strip():
            return checkout_form(rec, error="Enter your card number.", values=values, status=400)
        kwargs.update(
            card=form["card_number"],
            three_d_secure=form.get("three_d_secure"),
            wallet=form.get("wallet") or None,
            expiry=_expiry(form.get("exp", "")),
        )
    try:
        result = emu.pay(rec["id"], **kwargs)
    except StripeErrorResponse as err:
        fresh = emu.get_session(rec["id"], ["line_items"])
        if fresh["status"] != "open":
            return closed(fresh, 400)
        return checkout_form(fresh, error=err.message, values=values, status=400)
    session = result["session"]
    if result.get("requires_action"):
        return three_d_secure(rec, form)
    if result["declined"]:
        values.pop("card_number", None)
        return checkout_form(rec, error=result["message"], values=values, status=402)
    target = success_redirect(session)
    if target:
        return redirect(target, code=303)
    return page("Payment complete", '<h1>Payment complete</h1><p role="status">Thank you.</p>')
