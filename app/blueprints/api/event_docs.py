"""The OpenAPI document's events: one component per event type (the body POSTed to endpoints,
and an item of the Events API), its `data` a component per shape, and `Event` a oneOf of them
told apart by `type`.

An event's `data` is the API's own object (Payment, Refund, Dispute, Subscription), as
app/notifications/outbox.py sends it: so its components are derived here from those objects'
components, made exact (every field always present, no other field) and extended with what the
outbox embeds (a refund's or dispute's `payment`, a declined `attempt`). The test in
tests/notifications/test_event_schemas.py holds real payloads against them."""

from __future__ import annotations

from app.notifications.event_types import (
    ATTEMPT_DATA,
    DISPUTE_DATA,
    EVENT_TYPES,
    PAYMENT_DATA,
    REFUND_DATA,
    SUBSCRIPTION_DATA,
)

# The Events API's additions to a notification's body: optional in the component, which is
# also the body an endpoint receives.
API_ONLY = ("object", "created")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def event_component_name(event_type: str) -> str:
    """payment.succeeded → PaymentSucceededEvent (an OpenAPI component name)."""
    words = event_type.replace(".", "_").split("_")
    return "".join(word.capitalize() for word in words) + "Event"


def _exact_property(prop: dict) -> dict:
    # A marshmallow Constant (schemas.Always) is documented without a type: give it one.
    if "default" in prop and not {"type", "$ref", "anyOf", "allOf", "oneOf"} & set(prop):
        return {**prop, "type": "string", "enum": [prop["default"]]}
    return prop


def _exact(
    schemas: dict,
    name: str,
    *,
    drop: tuple[str, ...] = (),
    add: dict | None = None,
    nullable: bool = False,
) -> dict:
    """Component `name` as a notification carries it: every property present, no other."""
    base = schemas[name]
    properties = {
        key: _exact_property(prop) for key, prop in base["properties"].items() if key not in drop
    }
    properties.update(add or {})
    exact = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if base.get("description"):
        exact["description"] = base["description"]
    if nullable:
        exact["nullable"] = True
    return exact


def _payment(schemas: dict, **add: dict) -> dict:
    method = _exact(schemas, "PaymentMethod", nullable=True)
    method["description"] = (
        "How the shopper paid; null until the PSP says. In payment.succeeded, null when the "
        "PSP's charge event came after the payment moved: no notification follows when it is "
        "learned; GET the payment for it."
    )
    return _exact(schemas, "Payment", add={"payment_method": method, **add})


def _data_components(schemas: dict) -> dict[str, dict]:
    payment = _payment(schemas)
    payment["description"] = "payment.initiated, .pending, .succeeded, .failed: the payment."
    attempt = _exact(schemas, "PaymentAttempt")
    attempt["properties"]["outcome"] = {"type": "string", "enum": ["failed"]}
    attempt_failed = _payment(schemas, attempt=attempt)
    attempt_failed["description"] = (
        "payment.attempt_failed: the payment (still open) with the declined `attempt`, as the "
        "payment's `attempts` show it."
    )
    refund = _exact(
        schemas,
        "Refund",
        add={
            "payment": _payment(
                schemas,
                refunds={
                    "type": "array",
                    "items": _exact(schemas, "Refund"),
                    "description": "Its refunds, oldest first.",
                },
            )
        },
    )
    refund["description"] = "refund.*: the refund, with its payment (and the payment's refunds)."
    dispute = _exact(schemas, "Dispute", add={"payment": _ref(PAYMENT_DATA)})
    dispute["description"] = "dispute.*: the dispute, with its payment."
    subscription = _exact(schemas, "Subscription", drop=("payments",))
    subscription["description"] = "subscription.*: the subscription (without its payments)."
    return {
        PAYMENT_DATA: payment,
        ATTEMPT_DATA: attempt_failed,
        REFUND_DATA: refund,
        DISPUTE_DATA: dispute,
        SUBSCRIPTION_DATA: subscription,
    }


def document_event_types(api) -> None:
    """Add the data and per-type event components, and make `Event` (the marshmallow
    EventSchema: the shared fields' descriptions) their oneOf with `type` as discriminator."""
    components = api.spec.components
    schemas = components.schemas
    event = schemas["Event"]
    if "oneOf" in event:
        return  # documented already (the spec outlives one app in the test suite)
    for name, schema in _data_components(schemas).items():
        components.schema(name, schema)
    common = event["properties"]
    mapping = {}
    for event_type in EVENT_TYPES.values():
        name = event_component_name(event_type.name)
        properties = {
            **common,
            "type": {"type": "string", "enum": [event_type.name]},
            "object": {**_exact_property(common["object"]), "description": "Events API only."},
            "data": _ref(event_type.data),
        }
        components.schema(
            name,
            {
                "type": "object",
                "description": f"`{event_type.name}`: {event_type.description} Signed per "
                "Standard Webhooks; `id` is the `webhook-id` header (de-duplicate on it). The "
                f"Events API adds {', '.join(f'`{k}`' for k in API_ONLY)}.",
                "required": [key for key in properties if key not in API_ONLY],
                "properties": properties,
                "additionalProperties": False,
            },
        )
        mapping[event_type.name] = _ref(name)["$ref"]
    schemas["Event"] = {
        "description": "An event: the body of the notification it is, as endpoints receive "
        "it, with `object` and `created`; one of the event types' components (by `type`).",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
