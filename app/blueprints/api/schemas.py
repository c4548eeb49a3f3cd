"""Request and response schemas of API v1: they validate requests and generate the OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from marshmallow.schema import SchemaMeta

from app.common.payment_methods import CARD_BRANDS
from app.disputes.service import MAX_EVIDENCE_TEXT
from app.disputes.service import STATUSES as DISPUTE_STATUSES
from app.models import (
    DisputeState,
    PaymentStatus,
    RefundState,
    RefundStatus,
    StatusSource,
    SubscriptionStatus,
)
from app.models.base import ANY_STATE
from app.models.payment import could_start_email
from app.notifications.events import EVENT_FAMILIES, EVENT_TYPES, MAX_TYPES, parse_types
from app.payments.failure_reasons import FAILURE_REASONS
from app.payments.queries import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.payments.validation import PaymentCreateSchema

__all__ = [
    "Always",
    "AnswerSchema",
    "DisputeEvidenceSchema",
    "DisputeListQuerySchema",
    "DisputeListSchema",
    "DisputeSchema",
    "EventListQuerySchema",
    "EventListSchema",
    "EventSchema",
    "PayBridgeErrorSchema",
    "PaymentCreateSchema",
    "PaymentDetailSchema",
    "PaymentListQuerySchema",
    "PaymentListSchema",
    "PaymentSchema",
    "RefundCreateSchema",
    "RefundListQuerySchema",
    "RefundListSchema",
    "RefundSchema",
    "SubscriptionCancelSchema",
    "SubscriptionSchema",
]

STATUSES = [s.value for s in PaymentStatus]
REFUND_STATUSES = [s.value for s in RefundStatus]
REFUND_REASONS = ["duplicate", "fraudulent", "requested_by_customer"]


class _AnswerSchemaMeta(SchemaMeta):
    """Marks the declared fields required (marshmallow's hook for adding to them), which is
    what apispec documents as `required`."""

    @classmethod
    def get_declared_fields(mcs, klass, cls_fields, inherited_fields, dict_cls=dict):  # noqa: N804
        declared = super().get_declared_fields(klass, cls_fields, inherited_fields, dict_cls)
        for name, field in declared.items():
            field.required = name not in klass.OPTIONAL
        return declared


class AnswerSchema(Schema, metaclass=_AnswerSchemaMeta):
    """An object the API answers with (documentation only: views build their JSON with the
    serializers). Documented closed, as every schema here (marshmallow's unknown=RAISE:
    additionalProperties false), and with every field required but those in OPTIONAL, so a
    field the serializer adds or drops is a mismatch the suite's contract check catches
    (tests/support/openapi_contract.py)."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ()


class Always(fields.Constant):
    """A field that always holds `constant` (an object's `object`), documented as that one
    value (an enum), so an answer with another is a mismatch."""

    def __init__(self, constant, **kwargs) -> None:
        super().__init__(constant, validate=validate.Equal(constant), **kwargs)


class RefundCreateSchema(Schema):
    """Body of POST /payments/{id}/refunds; it may be empty (a full refund of what remains)."""

    amount = fields.Integer(
        metadata={
            "description": "Minor units, at least 1; default: everything that remains "
            "(the amount minus succeeded and pending refunds)."
        }
    )
    reason = fields.String(validate=validate.OneOf(REFUND_REASONS))


class RefundSchema(AnswerSchema):
    """A refund as client apps see it (also the `data` of refund notifications)."""

    id = fields.String(metadata={"example": "re_9Kd2Lx0QpZr7Vb3nM1tYc8Hq"})
    object = Always("refund")
    livemode = fields.Boolean(
        metadata={
            "description": "true: a live refund (real money); false: test mode. It "
            "follows the API key that made it, and only keys of its mode see it."
        }
    )
    payment_id = fields.String()
    amount = fields.Integer(metadata={"description": "Minor units."})
    currency = fields.String()
    status = fields.String(validate=validate.OneOf(REFUND_STATUSES))
    reason = fields.String(allow_none=True, validate=validate.OneOf(REFUND_REASONS))
    failure_reason = fields.String(allow_none=True)
    psp = fields.String()
    psp_refund_id = fields.String(
        allow_none=True, metadata={"description": "Null until the PSP has accepted it."}
    )
    source = fields.String(metadata={"description": "api or dashboard."})
    created_at = fields.String(metadata={"description": "ISO 8601, UTC."})
    updated_at = fields.String(metadata={"description": "ISO 8601, UTC."})
    completed_at = fields.String(allow_none=True, metadata={"description": "ISO 8601, UTC."})


class PaymentMethodSchema(AnswerSchema):
    """How the shopper paid, from the PSP's charge (`payment_method_details`)."""

    object = Always("payment_method")
    type = fields.String(
        allow_none=True,
        metadata={"description": "Stripe's payment method type: card, sepa_debit, ideal, …"},
    )
    brand = fields.String(allow_none=True, metadata={"description": "Card brand: visa, …"})
    last4 = fields.String(allow_none=True, metadata={"description": "Of the card or IBAN."})
    exp_month = fields.Integer(allow_none=True)
    exp_year = fields.Integer(allow_none=True)
    funding = fields.String(allow_none=True, metadata={"description": "credit, debit, prepaid."})
    country = fields.String(allow_none=True, metadata={"description": "ISO 3166-1 alpha-2."})
    wallet = fields.String(
        allow_none=True, metadata={"description": "apple_pay, google_pay, link, …"}
    )
    three_d_secure = fields.String(
        allow_none=True,
        metadata={"description": "The 3-D Secure result when one ran: authenticated, …"},
    )
    mandate = fields.String(
        allow_none=True,
        metadata={"description": "SEPA Direct Debit: the mandate's id at the PSP (mandate_1…)."},
    )
    mandate_reference = fields.String(
        allow_none=True,
        metadata={
            "description": "SEPA Direct Debit: the mandate's reference, as the shopper's bank "
            "statement shows it; null until PayBridge has asked the PSP (shortly after the "
            "method is known)."
        },
    )


class PaymentAttemptSchema(AnswerSchema):
    """One try to pay on the hosted page, declined or succeeded."""

    object = Always("payment_attempt")
    attempted_at = fields.String(metadata={"description": "ISO 8601, UTC."})
    outcome = fields.String(validate=validate.OneOf(["failed", "succeeded"]))
    method_type = fields.String(allow_none=True)
    card_brand = fields.String(allow_none=True)
    card_last4 = fields.String(allow_none=True)
    decline_code = fields.String(
        allow_none=True, metadata={"description": "The issuer's reason, e.g. insufficient_funds."}
    )
    failure_code = fields.String(
        allow_none=True, metadata={"description": "Stripe's error code, e.g. card_declined."}
    )
    failure_message = fields.String(allow_none=True)
    psp_charge_id = fields.String(allow_none=True)


class PaymentSchema(AnswerSchema):
    """A payment as client apps see it (also the `data` of notifications)."""

    id = fields.String(metadata={"example": "pay_4Xq0Gm2cTqV1uV8yJ3nL5aBc"})
    object = Always("payment")
    livemode = fields.Boolean(
        metadata={
            "description": "true: a live payment (real money); false: test mode. It "
            "follows the API key that made it, and only keys of its mode see it."
        }
    )
    merchant_reference = fields.String()
    amount = fields.Integer(metadata={"description": "Minor units."})
    currency = fields.String()
    payment_type = fields.String(validate=validate.OneOf(["SALE", "RECC"]))
    interval = fields.String(allow_none=True)
    interval_count = fields.Integer(allow_none=True)
    description = fields.String(allow_none=True)
    customer_email = fields.String(allow_none=True)
    success_url = fields.String()
    cancel_url = fields.String()
    metadata = fields.Dict(keys=fields.String(), values=fields.String())
    status = fields.String(validate=validate.OneOf(STATUSES))
    status_version = fields.Integer(
        metadata={"description": "Grows by one with every status change."}
    )
    checkout_url = fields.String(
        allow_none=True,
        metadata={"description": "The PSP's hosted checkout page; set while INITIATED."},
    )
    psp = fields.String()
    psp_session_id = fields.String(allow_none=True)
    expires_at = fields.String(allow_none=True, metadata={"description": "ISO 8601, UTC."})
    failure_code = fields.String(
        allow_none=True, metadata={"description": "The PSP's own code of the failure."}
    )
    failure_message = fields.String(allow_none=True)
    failure_reason = fields.String(
        allow_none=True,
        validate=validate.OneOf(list(FAILURE_REASONS)),
        metadata={"description": "Why a FAILED payment failed (null otherwise)."},
    )
    payment_method = fields.Nested(
        PaymentMethodSchema,
        allow_none=True,
        metadata={
            "description": "How the shopper paid; null until the PSP says (its charge event, "
            "usually before the payment moves; else learned within seconds after)."
        },
    )
    refunded_amount = fields.Integer(
        metadata={"description": "Sum of the succeeded refunds; the payment stays SUCCESS."}
    )
    refund_state = fields.String(
        allow_none=True,
        validate=validate.OneOf([s.value for s in RefundState]),
        metadata={
            "description": "null: nothing refunded; partial: refunded in part; full: "
            "refunded_amount is the whole amount."
        },
    )
    dispute_state = fields.String(
        allow_none=True,
        validate=validate.OneOf([s.value for s in DisputeState]),
        metadata={
            "description": "null: never disputed; open: a dispute waits for the merchant's "
            "answer or the bank's decision; lost: the bank decided for the cardholder; won: "
            "decided for the merchant or closed without a chargeback. The payment stays SUCCESS."
        },
    )
    subscription_id = fields.String(
        allow_none=True, metadata={"description": "RECC: the subscription this payment is of."}
    )
    psp_subscription_id = fields.String(allow_none=True)
    parent_payment_id = fields.String(
        allow_none=True,
        metadata={"description": "RECC renewals: the subscription's first payment."},
    )
    created_at = fields.String(metadata={"description": "ISO 8601, UTC."})
    updated_at = fields.String(metadata={"description": "ISO 8601, UTC."})


class StatusChangeSchema(AnswerSchema):
    from_ = fields.String(data_key="from", allow_none=True)
    to = fields.String(validate=validate.OneOf(STATUSES))
    status_version = fields.Integer()
    source = fields.String(validate=validate.OneOf([s.value for s in StatusSource]))
    reason = fields.String(allow_none=True)
    psp_event_id = fields.String(allow_none=True)
    at = fields.String(metadata={"description": "ISO 8601, UTC."})


class PaymentDetailSchema(PaymentSchema):
    attempts = fields.List(
        fields.Nested(PaymentAttemptSchema),
        metadata={"description": "Every try to pay on the hosted page, oldest first."},
    )
    refunds = fields.List(fields.Nested(RefundSchema), metadata={"description": "Oldest first."})
    disputes = fields.List(
        fields.Nested("DisputeSchema"),
        metadata={"description": "Chargebacks and inquiries of a paid payment, oldest first."},
    )
    status_history = fields.List(fields.Nested(StatusChangeSchema))


EARLIEST_FILTER_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_FILTER_TIME = datetime(9999, 12, 30, tzinfo=UTC)


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 time (read as UTC without an offset) that the database can compare: from
    1970 to 9999, so `9999-12-31T23:00:00-05:00` is a 400, not an overflow."""

    default_error_messages = {"range": "Must be a time from 1970-01-01 to 9999-12-30 (UTC)."}

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("metadata", {}).setdefault(
            "description", "ISO 8601, 1970 to 9999; without an offset it is read as UTC."
        )
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = moment.astimezone(UTC)
        except (OverflowError, ValueError):
            raise self.make_error("range") from None
        if not EARLIEST_FILTER_TIME <= moment <= LATEST_FILTER_TIME:
            raise self.make_error("range")
        return moment


class CreatedWindowSchema(Schema):
    """`created_gte` and `created_lte`, either open; an empty window (lte before gte) is a
    mistake, refused rather than answered with nothing."""

    created_gte = UtcDateTime()
    created_lte = UtcDateTime()

    @validates_schema
    def _in_order(self, data: dict, **kwargs) -> None:
        gte, lte = data.get("created_gte"), data.get("created_lte")
        if gte and lte and lte < gte:
            raise ValidationError("Must not be before created_gte.", "created_lte")


def _email_beginning(value: str) -> None:
    if not could_start_email(value.strip()):
        raise ValidationError("An email address or its beginning: no spaces, at most one @.")


class PaymentListQuerySchema(CreatedWindowSchema):
    """Filters and paging of GET /api/v1/payments."""

    status = fields.String(validate=validate.OneOf(STATUSES))
    merchant_reference = fields.String(validate=validate.Length(min=1, max=200))
    refund_state = fields.String(
        validate=validate.OneOf([s.value for s in RefundState]),
        metadata={"description": "Paid back in part (`partial`) or in full (`full`)."},
    )
    dispute_state = fields.String(
        validate=validate.OneOf([ANY_STATE, *(s.value for s in DisputeState)]),
        metadata={"description": "Disputed: `open`, `lost`, `won`, or `any` of them."},
    )
    failure_reason = fields.String(
        validate=validate.OneOf(list(FAILURE_REASONS)),
        metadata={
            "description": "Why a FAILED payment failed: declined, expired, canceled_by_shopper, "
            "canceled_by_merchant or rejected_by_psp (a cancellation is not a decline)."
        },
    )
    method_type = fields.String(
        validate=[
            validate.Length(min=1, max=32),
            validate.Regexp(
                r"^[a-z0-9_]+$",
                error="A payment method type as the PSP names it: lower case, digits and _, "
                "like card or sepa_debit.",
            ),
        ],
        metadata={"description": "How it was paid, as the PSP names it: `card`, `sepa_debit`, …"},
    )
    customer_email = fields.String(
        validate=[validate.Length(min=1, max=254), _email_beginning],
        metadata={
            "description": "The customer's email or its beginning, in any case: `ann` and "
            "`Ann@Exa` both find ann@example.com (`%` and `_` are plain characters).",
            "example": "ann@",
        },
    )
    card_last4 = fields.String(
        validate=validate.Regexp(
            r"^[A-Za-z0-9]{4}$", error="Exactly 4 letters or digits: a card's or IBAN's last 4."
        ),
        metadata={"description": "The last 4 characters of the card or IBAN.", "example": "4242"},
    )
    card_brand = fields.String(
        validate=validate.OneOf(list(CARD_BRANDS)),
        metadata={"description": "The card's brand, as the PSP names it: `visa`, `amex`, …"},
    )
    limit = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )
    starting_after = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "The `next_cursor` of the previous page."},
    )


class PaymentListSchema(AnswerSchema):
    object = Always("list")
    data = fields.List(fields.Nested(PaymentSchema))
    has_more = fields.Boolean()
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "Pass as starting_after for the next page."}
    )


class RefundListQuerySchema(CreatedWindowSchema):
    """Filters and paging of GET /api/v1/refunds."""

    status = fields.String(validate=validate.OneOf(REFUND_STATUSES))
    payment_id = fields.String(
        validate=validate.Length(min=1, max=32),
        metadata={"description": "One payment's refunds (its `pay_…` id)."},
    )
    limit = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )
    starting_after = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "The `next_cursor` of the previous page."},
    )


class RefundListSchema(AnswerSchema):
    object = Always("list")
    data = fields.List(fields.Nested(RefundSchema))
    has_more = fields.Boolean()
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "Pass as starting_after for the next page."}
    )


class ErrorBodySchema(AnswerSchema):
    OPTIONAL = ("param", "details")

    code = fields.String(metadata={"description": "One of the documented error codes."})
    message = fields.String()
    param = fields.String(metadata={"description": "The field or header at fault, if any."})
    details = fields.Raw(metadata={"description": "Per-field messages, or the ids involved."})


class PayBridgeErrorSchema(AnswerSchema):
    """Every error answer: {"error": {"code", "message", "param"?, "details"?}}."""

    error = fields.Nested(ErrorBodySchema)


class SubscriptionSchema(AnswerSchema):
    """A subscription (RECC): its terms, its state, and every payment it made."""

    id = fields.String(metadata={"example": "subs_8Gq2Lm0cTqV1uV8yJ3nL5aBc"})
    object = Always("subscription")
    livemode = fields.Boolean(
        metadata={
            "description": "true: a live subscription (real money); false: test mode. It "
            "follows the API key that made it, and only keys of its mode see it."
        }
    )
    status = fields.String(validate=validate.OneOf([s.value for s in SubscriptionStatus]))
    amount = fields.Integer(metadata={"description": "Minor units, per period."})
    currency = fields.String()
    interval = fields.String()
    interval_count = fields.Integer()
    current_period_start = fields.String(allow_none=True)
    current_period_end = fields.String(
        allow_none=True, metadata={"description": "The next billing date (ISO 8601, UTC)."}
    )
    cancel_at_period_end = fields.Boolean()
    cancelled_at = fields.String(allow_none=True)
    ended_at = fields.String(allow_none=True)
    first_payment_id = fields.String()
    merchant_reference = fields.String(metadata={"description": "The first payment's."})
    psp = fields.String()
    psp_subscription_id = fields.String()
    created_at = fields.String()
    updated_at = fields.String()
    payments = fields.List(
        fields.Nested(PaymentSchema),
        metadata={"description": "The first payment and every renewal, oldest first."},
    )


class StrictBoolean(fields.Boolean):
    """A JSON true or false only: 1, "yes" or null is not a decision to cancel."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class SubscriptionCancelSchema(Schema):
    """POST /api/v1/subscriptions/{id}/cancel."""

    at_period_end = StrictBoolean(
        required=True,
        metadata={
            "description": "true: it ends when the paid period ends (no more charges); "
            "false: it ends now."
        },
    )


class DisputeSchema(AnswerSchema):
    """A dispute as client apps see it (also the `data` of dispute notifications)."""

    id = fields.String(metadata={"example": "dsp_4Lq9Zx2Vb7Nc1Mk8Tr3Yw6Hp"})
    object = Always("dispute")
    livemode = fields.Boolean(metadata={"description": "The mode of its payment."})
    payment_id = fields.String()
    amount = fields.Integer(metadata={"description": "Minor units disputed."})
    currency = fields.String()
    reason = fields.String(
        allow_none=True, metadata={"description": "The PSP's reason, e.g. fraudulent."}
    )
    status = fields.String(
        validate=validate.OneOf(DISPUTE_STATUSES),
        metadata={"description": "The PSP's status (Stripe's words; warning_*: an inquiry)."},
    )
    needs_response = fields.Boolean(
        metadata={"description": "true while the dispute waits for evidence or acceptance."}
    )
    evidence_due_by = fields.String(allow_none=True, metadata={"description": "ISO 8601, UTC."})
    has_evidence = fields.Boolean()
    submission_count = fields.Integer()
    evidence_text = fields.String(
        allow_none=True, metadata={"description": "The text evidence submitted through PayBridge."}
    )
    psp = fields.String()
    psp_dispute_id = fields.String()
    funds_withdrawn_at = fields.String(allow_none=True, metadata={"description": "ISO 8601, UTC."})
    funds_reinstated_at = fields.String(allow_none=True, metadata={"description": "ISO 8601, UTC."})
    created_at = fields.String(metadata={"description": "ISO 8601, UTC."})
    updated_at = fields.String(metadata={"description": "ISO 8601, UTC."})
    closed_at = fields.String(allow_none=True, metadata={"description": "ISO 8601, UTC."})


class DisputeListQuerySchema(Schema):
    """Filters and paging of GET /api/v1/disputes."""

    status = fields.String(validate=validate.OneOf(DISPUTE_STATUSES))
    payment_id = fields.String(
        validate=validate.Length(min=1, max=32),
        metadata={"description": "One payment's disputes (its `pay_…` id)."},
    )
    limit = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )
    starting_after = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "The `next_cursor` of the previous page."},
    )


class DisputeListSchema(AnswerSchema):
    object = Always("list")
    data = fields.List(fields.Nested(DisputeSchema))
    has_more = fields.Boolean()
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "Pass as starting_after for the next page."}
    )


class DisputeEvidenceSchema(Schema):
    """Body of POST /disputes/{id}/evidence: text evidence, submitted to the PSP at once."""

    text = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_EVIDENCE_TEXT),
        metadata={"description": "What the merchant says (Stripe's `uncategorized_text`)."},
    )


class EventSchema(AnswerSchema):
    """An event: the body of the notification it is, exactly as endpoints receive it (the
    Standard Webhooks payload), with `object` and `created`."""

    id = fields.String(
        metadata={
            "description": "The message id: the notification's `webhook-id` (drop repeats by it).",
            "example": "msg_2ZrB4h0WJx7k1yq9Lb3mNc8D",
        }
    )
    object = Always("event")
    type = fields.String(validate=validate.OneOf(EVENT_TYPES))
    livemode = fields.Boolean(metadata={"description": "The mode of the API key that sees it."})
    created = fields.String(metadata={"description": "ISO 8601, UTC: when it was written."})
    timestamp = fields.String(
        metadata={"description": "ISO 8601, UTC: when it happened (the body's own field)."}
    )
    data = fields.Dict(
        metadata={
            "description": "payment.*: the payment (payment.attempt_failed: with the declined "
            "`attempt`); refund.*: the refund with its `payment`; dispute.*: the dispute with "
            "its `payment`; subscription.*: the subscription. The OpenAPI document's Event is "
            "a oneOf of the event types' components, told apart by `type` "
            "(docs/notifications.md)."
        }
    )


def _event_types(value: str) -> None:
    """`payment.succeeded`, `payment.*`, or several comma-separated (parse_types says why not)."""
    try:
        parse_types(value)
    except ValueError as error:
        raise ValidationError(str(error)) from None


class EventListQuerySchema(CreatedWindowSchema):
    """Filters and paging of GET /api/v1/events."""

    type = fields.String(
        validate=[validate.Length(min=1, max=1000), _event_types],
        metadata={
            "description": f"One event type, a family with a wildcard "
            f"({', '.join(f + '.*' for f in EVENT_FAMILIES)}), or up to {MAX_TYPES} of them "
            "comma-separated.",
            "example": "payment.*,refund.failed",
        },
    )
    limit = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )
    starting_after = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "The `next_cursor` of the previous page."},
    )


class EventListSchema(AnswerSchema):
    object = Always("list")
    data = fields.List(fields.Nested(EventSchema))
    has_more = fields.Boolean()
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "Pass as starting_after for the next page."}
    )
