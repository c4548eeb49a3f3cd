"""The OpenAPI document is valid OpenAPI 3, generated from the schemas, and matches the routes."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from app.errors import ERROR_CODES
from app.notifications.event_types import EVENT_TYPES


def _spec(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.content_type.startswith("application/json")
    return response.get_json()


def test_document_is_valid_openapi_3(client):
    spec = _spec(client)
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_paths_are_exactly_the_api_routes(app, client):
    spec = _spec(client)
    documented = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint.startswith("api-docs."):
            continue
        if rule.endpoint == "api.docs":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


def test_request_schema_is_the_one_that_validates(client):
    spec = _spec(client)
    body = spec["paths"]["/api/v1/payments"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    schema = spec["components"]["schemas"][ref]
    assert set(schema["required"]) == {
        "merchant_reference",
        "amount",
        "currency",
        "success_url",
        "cancel_url",
    }
    assert schema["properties"]["amount"]["maximum"] == 99_999_999
    assert schema["properties"]["amount"]["minimum"] == 1
    assert schema["properties"]["merchant_reference"]["maxLength"] == 200


def test_operations_declare_api_key_auth_and_error_answers(client):
    spec = _spec(client)
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "basicAuth"}
    create = spec["paths"]["/api/v1/payments"]["post"]
    assert create["security"] == [{"bearerAuth": []}, {"basicAuth": []}]
    assert {"201", "400", "401", "409", "422", "503"} <= set(create["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])


def test_error_codes_are_documented_in_docs_api_md():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    for code in ERROR_CODES:
        assert f"`{code}`" in text, code


def test_every_documented_error_has_our_shape(client):
    spec = _spec(client)
    schemas = spec["components"]["schemas"]
    assert schemas["Error"] == {"$ref": "#/components/schemas/PayBridgeError"}
    assert set(schemas["PayBridgeError"]["properties"]) == {"error"}


def test_every_field_of_a_payment_answer_is_documented(client):
    """The payment object's fields (attempts, payment_method, failure_reason among them) are
    the schema's, and the failure reasons are exactly the codes PayBridge stores."""
    from app.payments.failure_reasons import FAILURE_REASONS
    from app.serializers.payment import PAYMENT_METHOD_FIELDS

    schemas = _spec(client)["components"]["schemas"]
    detail = schemas["PaymentDetail"]
    fields = set(detail["properties"]) | set(schemas["Payment"]["properties"])
    # Exact both ways, as the API answers it: every field present, no other.
    for schema in (detail, schemas["Payment"]):
        assert set(schema["required"]) == set(schema["properties"])
        assert schema["additionalProperties"] is False
    assert {"attempts", "payment_method", "failure_reason"} <= fields
    reasons = schemas["Payment"]["properties"]["failure_reason"]["enum"]
    assert reasons == [*FAILURE_REASONS, None]  # null while not FAILED
    method = schemas["PaymentMethod"]["properties"]
    assert set(method) == {"object", *PAYMENT_METHOD_FIELDS}
    attempt = schemas["PaymentAttempt"]["properties"]
    assert {"outcome", "decline_code", "card_brand", "card_last4"} <= set(attempt)


def test_event_is_a_one_of_every_event_type_told_apart_by_type(client):
    schemas = _spec(client)["components"]["schemas"]
    event = schemas["Event"]
    mapping = event["discriminator"]["mapping"]
    assert event["discriminator"]["propertyName"] == "type"
    assert set(mapping) == set(EVENT_TYPES)
    assert sorted(o["$ref"] for o in event["oneOf"]) == sorted(mapping.values())
    for event_type, ref in mapping.items():
        component = schemas[ref.rsplit("/", 1)[-1]]
        assert component["properties"]["type"]["enum"] == [event_type]
        data = schemas[component["properties"]["data"]["$ref"].rsplit("/", 1)[-1]]
        assert data["additionalProperties"] is False
        assert set(data["required"]) == set(data["properties"])
    # What the outbox embeds is documented: a refund's and a dispute's payment, the attempt.
    assert "payment" in schemas["RefundEventData"]["properties"]
    assert "payment" in schemas["DisputeEventData"]["properties"]
    assert "attempt" in schemas["PaymentAttemptFailedEventData"]["properties"]


def test_the_contract_check_refuses_an_answer_the_document_does_not_describe(client):
    """The hook every API test runs through (tests/support/openapi_contract.py) passes a
    documented answer and names what is wrong with a drifted one."""
    import json

    from tests.support.openapi_contract import Answer, Contract

    contract = Contract(_spec(client))
    error = {"error": {"code": "REFUND_NOT_FOUND", "message": "No such refund."}}

    def problems(status=404, body=error, mimetype="application/json") -> list[str]:
        answer = Answer(
            method="GET",
            path="/api/v1/refunds/re_x",
            rule="/api/v1/refunds/<string:refund_id>",
            endpoint="api.RefundById",
            status=status,
            mimetype=mimetype,
            body=json.dumps(body).encode(),
        )
        return contract.problems(answer)

    assert problems() == []
    assert problems(body={"error": {**error["error"], "hint": "x"}}) == [
        "error: Additional properties are not allowed ('hint' was unexpected)"
    ]
    assert problems(body={"error": {"code": "REFUND_NOT_FOUND"}}) == [
        "error: 'message' is a required property"
    ]
    assert problems(status=409) == ["status 409 is not documented (only 200, 401, 404, 429)"]
    assert problems(mimetype="text/html") == [
        "content type 'text/html', documented ['application/json']"
    ]
    refund = {"object": "refund", "id": "re_x", "amount": "10"}
    found = problems(status=200, body=refund)
    assert "amount: '10' is not of type 'integer'" in found
    assert "(body): 'payment_id' is a required property" in found
