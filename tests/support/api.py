"""Helpers for calling the JSON API in tests."""


def auth_headers(raw_key: str, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {raw_key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def post_refund(client, key: str, payment_id: str, body: dict | None = None, idem=None):
    """POST /api/v1/payments/{payment_id}/refunds (no body at all when `body` is None)."""
    kwargs = {"headers": auth_headers(key, idem)}
    if body is not None:
        kwargs["json"] = body
    return client.post(f"/api/v1/payments/{payment_id}/refunds", **kwargs)
