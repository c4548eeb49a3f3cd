"""The API's answers held against its OpenAPI document.

tests/conftest.py installs `install(app)` on the test app: every answer of /api/v1 that the
suite receives (through a test client or over HTTP from the live server) is checked against the
operation of its method and route rule: its status must be one the operation documents, its
content type the declared one, and its body valid against the response's schema (OpenAPI 3.0:
`nullable`, `oneOf`, local `$ref`s). What does not match fails the test that got it.

Each response schema is compiled once per run; validating a body is a walk over it."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass

from openapi_schema_validator import OAS30Validator

API_PREFIX = "/api/v1/"
JSON = "application/json"
# Not operations of the document: the document itself and the HTML reference page.
UNDOCUMENTED_ENDPOINTS = ("api-docs.", "api.docs")
# HEAD has no body; OPTIONS is Flask's own answer.
UNCHECKED_METHODS = {"HEAD", "OPTIONS"}


def openapi_path(rule: str) -> str:
    """A Flask rule as the document's path: /refunds/<string:refund_id> → /refunds/{refund_id}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


@dataclass(frozen=True)
class Answer:
    """What the check needs of one request and its answer."""

    method: str
    path: str  # the request's path, for the message
    rule: str | None  # the matched URL rule; None when no route matched (404, 405)
    endpoint: str | None
    status: int
    mimetype: str
    body: bytes


class Contract:
    """The document's operations and their compiled response schemas."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self._validators: dict[tuple[str, ...], OAS30Validator] = {}

    def _resolve(self, node: dict) -> dict:
        while "$ref" in node:
            target = self.spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def _validator(self, key: tuple[str, ...], schema: dict) -> OAS30Validator:
        validator = self._validators.get(key)
        if validator is None:
            # The schema's $refs resolve against the document's components.
            validator = OAS30Validator({**schema, "components": self.spec["components"]})
            self._validators[key] = validator
        return validator

    def problems(self, answer: Answer) -> list[str]:
        """Why `answer` is not what the document says it is; [] when it is."""
        if answer.method in UNCHECKED_METHODS:
            return []
        if answer.rule is None:
            # No route (404) or not this method (405): still our error shape.
            error = {"$ref": "#/components/schemas/PayBridgeError"}
            return self._body_problems(("no route",), error, answer)
        if answer.endpoint and answer.endpoint.startswith(UNDOCUMENTED_ENDPOINTS):
            return []
        path = openapi_path(answer.rule)
        operation = self.spec["paths"].get(path, {}).get(answer.method.lower())
        if operation is None:
            return [f"no operation {answer.method} {path} in the document"]
        # Every status must be named: flask-smorest's catch-all `default` documents no answer.
        response = operation["responses"].get(str(answer.status))
        if response is None:
            documented = sorted(s for s in operation["responses"] if s != "default")
            return [f"status {answer.status} is not documented (only {', '.join(documented)})"]
        content = self._resolve(response).get("content")
        if not content:
            return [] if not answer.body else ["a body where the document declares none"]
        if answer.mimetype not in content:
            return [f"content type {answer.mimetype!r}, documented {sorted(content)}"]
        key = (path, answer.method, str(answer.status), answer.mimetype)
        return self._body_problems(key, content[answer.mimetype]["schema"], answer)

    def _body_problems(self, key: tuple[str, ...], schema: dict, answer: Answer) -> list[str]:
        if answer.mimetype != JSON:
            return [f"content type {answer.mimetype!r}, not {JSON}"]
        try:
            body = json.loads(answer.body)
        except ValueError as error:
            return [f"the body is not JSON: {error}"]
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in self._validator(key, schema).iter_errors(body)
        ]


class Breaches:
    """Mismatches found since the current test began (the live server answers on threads)."""

    def __init__(self) -> None:
        self._found: list[str] = []
        self._lock = threading.Lock()

    def add(self, message: str) -> None:
        with self._lock:
            self._found.append(message)

    def take(self) -> list[str]:
        with self._lock:
            found, self._found = self._found, []
        return found


breaches = Breaches()


def install(app) -> None:
    """Check every /api/v1 answer of `app` (an after_request hook: it sees the final status,
    headers and body); what does not match is kept for `raise_breaches`."""
    from flask import request

    from app.extensions import api

    contract: list[Contract] = []  # made at the first answer: the document is complete by then

    @app.after_request
    def hold_to_the_contract(response):
        if not request.path.startswith(API_PREFIX):
            return response
        if not contract:
            contract.append(Contract(api.spec.to_dict()))
        rule = request.url_rule
        answer = Answer(
            method=request.method,
            path=request.path,
            rule=rule.rule if rule is not None else None,
            endpoint=request.endpoint,
            status=response.status_code,
            mimetype=response.mimetype,
            body=b"" if response.is_streamed else response.get_data(),
        )
        problems = contract[0].problems(answer)
        if problems:
            breaches.add(f"{answer.method} {answer.path} → {answer.status}: " + "; ".join(problems))
        return response


def raise_breaches() -> None:
    """Fail the current test with every answer it got that the document does not describe."""
    found = breaches.take()
    if found:
        raise AssertionError(
            "API answers that do not match the OpenAPI document:\n" + "\n".join(found)
        )
