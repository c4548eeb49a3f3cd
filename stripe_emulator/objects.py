"""Builders for Stripe objects: every key of the matching object in fixtures3.json is present."""

from __future__ import annotations

import secrets
import string
from typing import Any

from . import API_VERSION

_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def session_id(livemode: bool = False) -> str:
    return new_id("cs_live_a1" if livemode else "cs_test_a1", 56)


def in_mode(obj, livemode: bool):
    """``obj`` marked as made in its mode: the builders make test-mode objects, so a live one
    gets ``livemode: true`` on itself and on everything it embeds (prices, plans, lines). An
    object Stripe shows no mode on (a refund) keeps it privately."""
    if "livemode" not in obj:
        obj["_livemode"] = livemode
    if livemode:
        _mark_live(obj)
    return obj


def _mark_live(value) -> None:
    if isinstance(value, dict):
        if "livemode" in value:
            value["livemode"] = True
        for key, item in value.items():
            if key != "metadata":  # the integration's own keys, whatever they are called
                _mark_live(item)
    elif isinstance(value, list):
        for item in value:
            _mark_live(item)


def balance(livemode: bool) -> dict:
    """The account's balance: the emulator moves no money, so always zero (keys of
    fixtures3.json → balance); its ``livemode`` tells a key's mode."""
    zero = {"amount": 0, "currency": "usd"}
    return {
        "object": "balance",
        "available": [{**zero, "source_types": {"card": 0}}],
        "connect_reserved": [dict(zero)],
        "livemode": livemode,
        "pending": [{**zero, "source_types": {"card": 0}}],
    }


def price(
    *,
    created: int,
    currency: str,
    unit_amount: int,
    product_name: str,
    recurring: dict | None,
    product: str | None = None,
) -> dict:
    return {
        "id": new_id("price_"),
        "object": "price",
        "active": False,  # ad-hoc prices from price_data are inactive on Stripe
        "billing_scheme": "per_unit",
        "created": created,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product or new_id("prod_", 14),
        "recurring": (
            {
                "interval": recurring["interval"],
                "interval_count": recurring.get("interval_count", 1),
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
            if recurring
            else None
        ),
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def line_item(*, price_obj: dict, quantity: int, description: str) -> dict:
    amount = price_obj["unit_amount"] * quantity
    return {
        "id": new_id("li_"),
        "object": "item",
        "adjustable_quantity": None,
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price_obj["currency"],
        "description": description,
        "metadata": {},
        "price": price_obj,
        "quantity": quantity,
    }


def checkout_session(
    *,
    sid: str,
    created: int,
    expires_at: int,
    mode: str,
    url: str,
    items: list[dict],
    params: dict,
    payment_method_types: list[str],
) -> dict:
    total = sum(i["amount_total"] for i in items) if items else None
    currency = items[0]["currency"] if items else params.get("currency")
    no_payment = mode == "setup" or total == 0
    invoice_creation = None
    if mode == "payment":
        invoice_creation = {
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        }
    apc = params.get("allow_promotion_codes")
    return {
        "id": sid,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None if apc is None else apc == "true",
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": params.get("billing_address_collection"),
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": params.get("customer"),
        "customer_account": None,
        "customer_creation": None if mode == "subscription" else "if_required",
        "customer_details": None,
        "customer_email": params.get("customer_email"),
        "discounts": [],
        "expires_at": expires_at,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": invoice_creation,
        "livemode": False,
        "locale": params.get("locale"),
        "managed_payments": {"enabled": False},
        "metadata": dict(params.get("metadata") or {}),
        "mode": mode,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always" if mode == "subscription" else "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": payment_method_types,
        "payment_status": "no_payment_required" if no_payment else "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": params.get("submit_type"),
        "subscription": None,
        "success_url": params.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": params.get("ui_mode") or "hosted_page",
        "url": url,
        "wallet_options": None,
    }


def _no_address() -> dict:
    """An address with every field unset (the emulator collects none); a new dict each time."""
    return dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))


def customer_details(email: str | None, name: str | None = None) -> dict:
    return {
        "address": _no_address(),
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def payment_intent(
    *,
    created: int,
    amount: int,
    currency: str,
    method_type: str,
    status: str,
    metadata: dict,
    description: str | None,
    receipt_email: str | None,
) -> dict:
    pid = new_id("pi_3")
    return {
        "id": pid,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount if status == "succeeded" else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{pid}_secret_{new_id('', 25)}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "customer": None,
        "customer_account": None,
        "description": description,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": new_id("ch_3"),
        "livemode": False,
        "managed_payments": None,
        "metadata": dict(metadata),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": new_id("pm_1"),
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": [method_type],
        "processing": None,
        "receipt_email": receipt_email,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def event(
    *,
    created: int,
    type: str,
    obj: dict,
    request_id: str | None,
    idempotency_key: str | None,
    previous_attributes: dict | None = None,
) -> dict:
    data: dict = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": new_id("evt_1"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": type,
    }


def webhook_endpoint(
    *,
    created: int,
    url: str,
    enabled_events: list[str],
    secret: str,
    description: str | None = None,
    metadata: dict | None = None,
    api_version: str | None = None,
) -> dict:
    return {
        "id": new_id("we_1"),
        "object": "webhook_endpoint",
        "api_version": api_version,
        "application": None,
        "created": created,
        "description": description,
        "enabled_events": list(enabled_events),
        "livemode": False,
        "metadata": dict(metadata or {}),
        "secret": secret,
        "status": "enabled",
        "url": url,
    }


def list_object(url: str, data: list[dict], has_more: bool) -> dict:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def card_brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or number[:1] == "2":
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    return "unknown"


# Test cards whose charge details differ from the defaults (a credit card issued in the US):
# Stripe's funding and country test numbers (https://docs.stripe.com/testing).
CARD_FACTS = {
    "4000056655665556": {"funding": "debit"},
    "5200828282828210": {"funding": "debit"},
    "5105105105105100": {"funding": "prepaid"},
    "4000000760000002": {"country": "BR"},
    "4000001240000000": {"country": "CA"},
    "4000004840008001": {"country": "MX"},
    "4000000400000008": {"country": "AT"},
    "4000002500003155": {"country": "FR"},
    "4000002760003184": {"country": "DE"},
}
# The wallets the hosted page offers for a card (the card behind the wallet pays).
WALLETS = ("apple_pay", "google_pay", "link")


def card_details(method: dict, amount: int) -> dict:
    """A charge's `payment_method_details.card` for a test card number, as Stripe fills it:
    brand, last 4, expiry, funding, country, wallet and the 3-D Secure result if one ran."""
    number = method.get("number", "4242424242424242")
    brand = card_brand(number)
    facts = CARD_FACTS.get(number, {})
    wallet = method.get("wallet")
    three_ds = None
    if method.get("three_d_secure"):
        three_ds = {
            "authentication_flow": "challenge",
            "electronic_commerce_indicator": "05",
            "exemption_indicator": None,
            "result": method["three_d_secure"],
            "result_reason": None if method["three_d_secure"] == "authenticated" else "rejected",
            "transaction_id": new_id("", 36),
            "version": "2.2.0",
        }
    return {
        "amount_authorized": amount,
        "authorization_code": None,
        "brand": brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "country": facts.get("country", "US"),
        "exp_month": method.get("exp_month", 12),
        "exp_year": method.get("exp_year", 2034),
        "extended_authorization": {"status": "disabled"},
        "fingerprint": new_id("", 16),
        "funding": facts.get("funding", "credit"),
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": number[-4:],
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": brand,
        "network_token": {"used": False},
        "network_transaction_id": None,
        "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
        "regulated_status": None,
        "three_d_secure": three_ds,
        "transaction_link_id": None,
        "wallet": {"dynamic_last4": None, "type": wallet, wallet: {}} if wallet else None,
    }


def method_details(method: dict, amount: int) -> dict:
    """A charge's `payment_method_details` for what the shopper paid with."""
    if method.get("type") == "sepa_debit":
        iban = method.get("iban", "")
        return {
            "type": "sepa_debit",
            "sepa_debit": {
                "bank_code": iban[4:12] or None,
                "branch_code": None,
                "country": iban[:2] or None,
                "fingerprint": new_id("", 16),
                "last4": iban[-4:] or None,
                "mandate": new_id("mandate_1"),
            },
        }
    return {"type": "card", "card": card_details(method, amount)}


_REFERENCE_CHARS = string.ascii_uppercase + string.digits


def mandate(*, mandate_id: str, accepted_at: int, pm_id: str | None) -> dict:
    """The Mandate a SEPA Direct Debit charge names (`payment_method_details.sepa_debit.mandate`):
    the shopper accepted it online on the hosted page; its `reference` (16 upper-case letters
    and digits, as Stripe's are) is what the bank statement and the pre-notification show."""
    return {
        "id": mandate_id,
        "object": "mandate",
        "customer_acceptance": {
            "accepted_at": accepted_at,
            "online": {"ip_address": "127.0.0.1", "user_agent": "Mozilla/5.0 (emulator)"},
            "type": "online",
        },
        "livemode": False,
        "multi_use": {},
        "payment_method": pm_id,
        "payment_method_details": {
            "sepa_debit": {
                "reference": "".join(secrets.choice(_REFERENCE_CHARS) for _ in range(16)),
                "url": "",  # Stripe's page of the mandate: the emulator has none
            },
            "type": "sepa_debit",
        },
        "status": "active",
        "type": "multi_use",
    }


def payment_method(*, pm_id: str, created: int, method: dict, email: str | None) -> dict:
    """The PaymentMethod object Stripe puts in a PaymentIntent's `last_payment_error`."""
    obj = {
        "id": pm_id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {"address": _no_address(), "email": email, "name": None,
                            "phone": None, "tax_id": None},
        "created": created,
        "customer": None,
        "livemode": False,
        "metadata": {},
        "type": method.get("type", "card"),
    }  # fmt: skip
    if obj["type"] == "sepa_debit":
        details = method_details(method, 0)["sepa_debit"]
        obj["sepa_debit"] = {k: details[k] for k in ("bank_code", "branch_code", "country",
                                                     "fingerprint", "last4")}  # fmt: skip
        return obj
    card = card_details(method, 0)
    obj["card"] = {
        "brand": card["brand"],
        "checks": card["checks"],
        "country": card["country"],
        "display_brand": card["brand"],
        "exp_month": card["exp_month"],
        "exp_year": card["exp_year"],
        "fingerprint": card["fingerprint"],
        "funding": card["funding"],
        "last4": card["last4"],
        "networks": {"available": [card["brand"]], "preferred": None},
        "three_d_secure_usage": {"supported": True},
        "wallet": card["wallet"],
    }
    return obj


def _outcome(failure: Any) -> dict:
    if failure is None:
        return {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    if getattr(failure, "blocked", False):
        return {
            "advice_code": "do_not_try_again",
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "not_sent_to_network",
            "reason": "highest_risk_level",
            "risk_level": "highest",
            "seller_message": "Stripe blocked this payment as too risky.",
            "type": "blocked",
        }
    return {
        "advice_code": "try_again_later",
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "declined_by_network",
        "reason": failure.decline_code or failure.code,
        "risk_level": "normal",
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }


def charge(
    *,
    created: int,
    pi: dict,
    status: str,
    method: dict,
    email: str | None,
    name: str | None,
    failure: Any = None,
) -> dict:
    """The charge behind a PaymentIntent (refunds hang off it): one per attempt, a failed one
    carrying the decline (`failure`: cards.Decline)."""
    cid = pi["latest_charge"]
    details = method_details(method, pi["amount"])
    paid = status == "succeeded"
    return {
        "id": cid,
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": pi["amount"] if paid else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn_3") if paid else None,
        "billing_details": {
            "address": _no_address(),
            "email": email,
            "name": name,
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "PAYBRIDGE EMULATOR",
        "captured": status != "failed",
        "created": created,
        "currency": pi["currency"],
        "customer": None,
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": failure.code if failure else None,
        "failure_message": failure.message if failure else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(pi["metadata"]),
        "on_behalf_of": None,
        "outcome": _outcome(failure),
        "paid": paid,
        "payment_intent": pi["id"],
        "payment_method": pi["payment_method"],
        "payment_method_details": details,
        "receipt_email": email,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        # No `refunds`: since API 2022-11-15 a charge lists its refunds only when asked
        # (`expand[]=refunds`); events and plain retrieves carry `amount_refunded` alone.
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


# -- refunds (issue 6) ---------------------------------------------------------------------


def refund(
    *, created: int, charge_obj: dict, amount: int, reason: str | None, metadata: dict, status: str
) -> dict:
    method_type = charge_obj["payment_method_details"]["type"]
    if method_type == "card":
        destination = {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        }
    else:
        destination = {method_type: {}, "type": method_type}
    return {
        "id": new_id("re_3"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn_3"),
        "charge": charge_obj["id"],
        "created": created,
        "currency": charge_obj["currency"],
        "customer": charge_obj["customer"],
        "customer_account": None,
        "description": None,
        "destination_details": destination,
        "failure_balance_transaction": None,
        "failure_reason": None,
        "instructions_email": None,
        "metadata": dict(metadata),
        "next_action": None,
        "payment_intent": charge_obj["payment_intent"],
        "payment_method": charge_obj["payment_method"],
        "pending_reason": "processing" if status == "pending" else None,
        "presentment_details": None,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


# -- subscriptions and invoices (issue 6) --------------------------------------------------


def plan(price_obj: dict) -> dict:
    recurring = price_obj["recurring"] or {}
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": {},
        "meter": None,
        "nickname": None,
        "product": price_obj["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def subscription_item(
    *, created: int, sub_id: str, price_obj: dict, quantity: int, start: int, end: int
) -> dict:
    return {
        "id": new_id("si_", 14),
        "object": "subscription_item",
        "billed_until": None,
        "billing_thresholds": None,
        "created": created,
        "current_period_end": end,
        "current_period_start": start,
        "current_trial": None,
        "discounts": [],
        "metadata": {},
        "plan": plan(price_obj),
        "price": price_obj,
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }


def subscription(
    *,
    sub_id: str,
    created: int,
    customer: str,
    currency: str,
    items: list[dict],
    metadata: dict,
    description: str | None,
    default_payment_method: str | None,
) -> dict:
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": created,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "customer": customer,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": default_payment_method,
        "default_source": None,
        "default_tax_rates": [],
        "description": description,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": list_object(f"/v1/subscription_items?subscription={sub_id}", items, False),
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": dict(metadata),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "presentment_details": None,
        "schedule": None,
        "start_date": created,
        "status": "incomplete",
        "status_details": None,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def invoice_line(
    *,
    invoice_id: str,
    sub: dict,
    price_obj: dict,
    quantity: int,
    description: str,
    start: int,
    end: int,
    subscription_item_id: str | None,
) -> dict:
    amount = price_obj["unit_amount"] * quantity
    name = description or "item"
    if subscription_item_id:
        parent = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"],
                "subscription_item": subscription_item_id,
            },
            "type": "subscription_item_details",
        }
    else:  # a one-time item bought together with the subscription (first invoice only)
        parent = {
            "invoice_item_details": {
                "invoice_item": new_id("ii_1"),
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"],
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        }
    return {
        "id": new_id("il_1"),
        "object": "line_item",
        "amount": amount,
        "currency": price_obj["currency"],
        "description": f"{quantity} × {name}",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": parent,
        "period": {"end": end, "start": start},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price_obj["id"], "product": price_obj["product"]},
            "type": "price_details",
            "unit_amount_decimal": price_obj["unit_amount_decimal"],
        },
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": sub["id"],
        "subtotal": amount,
        "taxes": [],
    }


def invoice(
    *,
    invoice_id: str,
    created: int,
    sub: dict,
    number: str,
    billing_reason: str,
    period_start: int,
    period_end: int,
    lines: list[dict],
    customer_email: str | None,
    customer_name: str | None,
) -> dict:
    total = sum(line["amount"] for line in lines)
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "PayBridge Emulator",
        "account_tax_ids": None,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_paid_off_stripe": 0,
        "amount_remaining": total,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "confirmation_secret": None,
        "created": created,
        "currency": sub["currency"],
        "custom_fields": None,
        "customer": sub["customer"],
        "customer_account": None,
        "customer_address": None,
        "customer_email": customer_email,
        "customer_name": customer_name,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": created,
        "ending_balance": 0,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": list_object(f"/v1/invoices/{invoice_id}/lines", lines, False),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": number,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(sub["metadata"]),
                "subscription": sub["id"],
            },
            "type": "subscription_details",
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": period_end,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "open",
        "status_details": None,
        "status_transitions": {
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        # Not in the endive API any more (see parent.subscription_details), but in the fixture.
        "subscription": sub["id"],
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "test_clock": None,
        "threshold_reason": None,
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": created,
    }


def invoice_payment(*, created: int, inv: dict, pi_id: str) -> dict:
    paid = inv["status"] == "paid"
    return {
        "id": "inpay_" + pi_id.removeprefix("pi_"),
        "object": "invoice_payment",
        "amount_paid": inv["amount_paid"] if paid else None,
        "amount_requested": inv["amount_due"],
        "created": created,
        "currency": inv["currency"],
        "invoice": inv["id"],
        "is_default": True,
        "livemode": inv["livemode"],
        "payment": {"payment_intent": pi_id, "type": "payment_intent"},
        "status": "paid" if paid else "open",
        "status_transitions": {
            "canceled_at": None,
            "paid_at": inv["status_transitions"]["paid_at"] if paid else None,
        },
    }
