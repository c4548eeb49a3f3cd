"""Helpers for calling the JSON API in tests."""


def auth_headers(raw_key: str, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {raw_key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers
