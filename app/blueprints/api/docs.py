"""The API reference page's content, read from the generated OpenAPI document."""

from __future__ import annotations

import json

from app.errors import ERROR_CODES
from app.extensions import api

METHOD_ORDER = ("get", "post", "put", "patch", "delete")


def _resolve(spec: dict, node: dict | None) -> dict:
    """Follow a local $ref (#/components/...) to the object it names."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 10:
        target: dict = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {})
        node = target
        seen += 1
    return node or {}


def _type_of(spec: dict, schema: dict) -> str:
    schema = _resolve(spec, schema)
    kind = schema.get("type", "object")
    if kind == "array":
        return f"array of {_type_of(spec, schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"] if v is not None)
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return kind


def _fields(spec: dict, schema: dict | None) -> list[dict]:
    """The properties of a schema as rows: name, type, required, description and limits."""
    schema = _resolve(spec, schema)
    told_by: tuple[str, list] | None = None
    if "oneOf" in schema and "properties" not in schema:
        # The event types: the same fields, told apart by `type` (their `data` differs).
        discriminator = schema.get("discriminator") or {}
        if discriminator:
            told_by = (discriminator["propertyName"], list(discriminator.get("mapping", {})))
        schema = _resolve(spec, schema["oneOf"][0])
    required = set(schema.get("required", []))
    rows = []
    for name, prop in (schema.get("properties") or {}).items():
        resolved = _resolve(spec, prop)
        limits = []
        for key, label in (
            ("minimum", "min"),
            ("maximum", "max"),
            ("minLength", "min length"),
            ("maxLength", "max length"),
            ("maxProperties", "max keys"),
        ):
            if key in resolved:
                limits.append(f"{label} {resolved[key]}")
        if "default" in resolved:
            limits.append(f"default {json.dumps(resolved['default'])}")
        kind = _type_of(spec, prop)
        if told_by and name == told_by[0]:
            kind = " | ".join(told_by[1])
        rows.append(
            {
                "name": name,
                "type": kind,
                "required": name in required,
                "description": resolved.get("description", ""),
                "limits": ", ".join(limits),
            }
        )
    return rows


def _anchor(method: str, path: str) -> str:
    return f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", "")


def docs_context() -> dict:
    """Operations, schemas and error codes for templates/api/docs.html."""
    spec = api.spec.to_dict()
    operations = [
        _operation(spec, method, path, item[method])
        for path, item in sorted(spec.get("paths", {}).items())
        for method in METHOD_ORDER
        if item.get(method)
    ]
    return {
        "spec_info": spec.get("info", {}),
        "openapi_version": spec.get("openapi"),
        "operations": operations,
        "error_codes": sorted(ERROR_CODES.items(), key=lambda item: (item[1].status, item[0])),
    }


def _operation(spec: dict, method: str, path: str, op: dict) -> dict:
    """One operation as the page shows it: parameters, body fields, and every response."""
    body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {})
    return {
        "method": method.upper(),
        "path": path,
        "anchor": _anchor(method, path),
        "summary": op.get("summary", ""),
        "description": op.get("description", ""),
        "parameters": [
            {
                "name": p.get("name"),
                "in": p.get("in"),
                "required": p.get("required", False),
                "type": _type_of(spec, p.get("schema", {})),
                "description": p.get("description", ""),
            }
            for p in (_resolve(spec, p) for p in op.get("parameters", []))
        ],
        "body": _fields(spec, body.get("schema")),
        "responses": [
            _response(spec, status, response)
            for status, response in sorted(op.get("responses", {}).items())
        ],
    }


def _response(spec: dict, status: str, response: dict) -> dict:
    response = _resolve(spec, response)
    content = (response.get("content") or {}).get("application/json", {})
    return {
        "status": status,
        "description": response.get("description", ""),
        "fields": _fields(spec, content.get("schema")),
    }
