"""The rules a new payment must satisfy: one marshmallow schema for the API and in-process callers.

The API blueprint uses `PaymentCreateSchema` to validate requests and to generate the OpenAPI
document; `validate_create_params` applies the same rules for callers that are not the API
(the demo storefront), so no path skips them.
"""

from __future__ import annotations

import hashlib
import json

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.common.money import CURRENCIES, MAX_CHARGE_AMOUNT, charge_amount_problem
from app.common.urls import split_url
from app.errors import PayBridgeError
from app.models import PaymentType
from app.psp import limits

MAX_URL_LENGTH = 2000
INTERVALS = ("day", "week", "month", "year")
MAX_INTERVAL_COUNT = 12


class CurrencyField(fields.String):
    """An ISO 4217 code, accepted in any case and stored upper-case."""

    default_error_messages = {"unknown": "Unknown currency {input!r}: use an ISO 4217 code."}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if text not in CURRENCIES:
            raise self.make_error("unknown", input=value)
        return text


def _metadata_key(key: str) -> None:
    if any(char in key for char in limits.METADATA_KEY_FORBIDDEN):
        raise ValidationError("Metadata keys cannot contain square brackets.")
    # Refused rather than silently replaced by PayBridge's own.
    if key in limits.PAYBRIDGE_METADATA_KEYS:
        raise ValidationError(f"{key!r} is PayBridge's own metadata key: choose another name.")


def _readable_url(url: str) -> None:
    # marshmallow's Url takes some hosts Python's urlsplit cannot read (`http://[1:2]/`): the
    # return pages add `payment_id` to the URL with urlsplit, so it must read it.
    try:
        split_url(url)
    except PayBridgeError as exc:
        raise ValidationError(exc.message) from None


def _http_url() -> fields.Url:
    return fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=[validate.Length(max=MAX_URL_LENGTH), _readable_url],
        metadata={"description": "http(s) URL, at most 2000 characters"},
    )


class PaymentCreateSchema(Schema):
    """Body of POST /api/v1/payments."""

    merchant_reference = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=limits.MERCHANT_REFERENCE_MAX_LENGTH),
            validate.Regexp(r"\S", error="Must not be blank."),
        ],
        metadata={"description": "Your order id; unique per merchant.", "example": "order-1001"},
    )
    amount = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=MAX_CHARGE_AMOUNT),
        metadata={
            "description": "Minor units (cents), at most 99999999, and at least the PSP's "
            "minimum charge in the currency (e.g. 50 USD/EUR, 30 GBP, 50 JPY; see docs/api.md).",
            "example": 1999,
        },
    )
    currency = CurrencyField(
        required=True, metadata={"description": "ISO 4217 code.", "example": "EUR"}
    )
    payment_type = fields.String(
        load_default=PaymentType.SALE.value,
        validate=validate.OneOf([t.value for t in PaymentType]),
        metadata={"description": "SALE (one-time, default) or RECC (subscription)."},
    )
    interval = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(INTERVALS),
        metadata={"description": "RECC only (required there): day, week, month or year."},
    )
    interval_count = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(min=1, max=MAX_INTERVAL_COUNT),
        metadata={"description": "RECC only: bill every N intervals (1..12, default 1)."},
    )
    description = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=limits.DESCRIPTION_MAX_LENGTH),
        metadata={"description": "Shown to the shopper on the checkout page."},
    )
    customer_email = fields.Email(
        load_default=None, allow_none=True, validate=validate.Length(max=limits.EMAIL_MAX_LENGTH)
    )
    success_url = _http_url()
    cancel_url = _http_url()
    metadata = fields.Dict(
        keys=fields.String(
            validate=[validate.Length(min=1, max=limits.METADATA_MAX_KEY_LENGTH), _metadata_key]
        ),
        values=fields.String(validate=validate.Length(max=limits.METADATA_MAX_VALUE_LENGTH)),
        load_default=dict,
        validate=validate.Length(
            max=limits.MERCHANT_METADATA_MAX_KEYS,
            error=f"At most {limits.MERCHANT_METADATA_MAX_KEYS} keys.",
        ),
        metadata={
            "description": f"Up to {limits.MERCHANT_METADATA_MAX_KEYS} string pairs (key "
            f"≤{limits.METADATA_MAX_KEY_LENGTH} characters without [ ], value "
            f"≤{limits.METADATA_MAX_VALUE_LENGTH}); paybridge_payment_id and "
            "merchant_reference are PayBridge's own."
        },
    )

    @validates_schema
    def _amount_the_psp_charges(self, data: dict, **kwargs) -> None:
        if "amount" in data and "currency" in data:
            problem = charge_amount_problem(data["amount"], data["currency"])
            if problem:
                raise ValidationError(problem, "amount")

    @validates_schema
    def _recurring_needs_an_interval(self, data: dict, **kwargs) -> None:
        if data.get("payment_type") == PaymentType.RECC.value:
            if not data.get("interval"):
                raise ValidationError("A RECC payment needs an interval.", "interval")
        else:
            for name in ("interval", "interval_count"):
                if data.get(name) is not None:
                    raise ValidationError("Only RECC payments have an interval.", name)


def normalise(data: dict) -> dict:
    """Fill the defaults that depend on other fields (RECC interval_count)."""
    data = dict(data)
    if data.get("payment_type") == PaymentType.RECC.value and not data.get("interval_count"):
        data["interval_count"] = 1
    return data


def validation_error(messages: dict | list | str) -> PayBridgeError:
    """Our VALIDATION_ERROR for marshmallow messages: names the first field in `param`."""
    if not isinstance(messages, dict):
        messages = {"_schema": messages if isinstance(messages, list) else [messages]}
    param = next(iter(sorted(k for k in messages if k != "_schema")), None)
    first = messages[param] if param else messages.get("_schema")
    text = _first_message(first)
    message = f"{param}: {text}" if param else text
    return PayBridgeError("VALIDATION_ERROR", message, param=param, details=messages)


def _first_message(value) -> str:
    while isinstance(value, dict | list) and value:
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
    return str(value) if value else "Invalid value."


def validate_create_params(params: dict) -> dict:
    """Validate a create request's body; raise VALIDATION_ERROR naming each bad field."""
    if not isinstance(params, dict):
        raise PayBridgeError("INVALID_JSON")
    try:
        data = PaymentCreateSchema().load(params)
    except ValidationError as exc:
        raise validation_error(exc.messages) from exc
    return normalise(data)


def fingerprint(params: dict) -> str:
    """A stable hash of validated params: the same request gives the same fingerprint."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
