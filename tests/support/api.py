"""Helpers for calling the JSON API in tests."""


def auth_headers(raw_key: str, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {raw_key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def create_body(**overrides) -> dict:
    """A valid POST /api/v1/payments body (25.99 EUR, reference order-1001), overridden."""
    data = {
        "merchant_reference": "order-1001",
        "amount": 2599,
        "currency": "eur",
        "description": "Two blue widgets",
        "customer_email": "shopper@example.com",
        "success_url": "https://shop.example.com/thanks",
        "cancel_url": "https://shop.example.com/cart",
        "metadata": {"cart": "c-1"},
    }
    data.update(overrides)
    return data


def post_refund(client, key: str, payment_id: str, body: dict | None = None, idem=None):
    """POST /api/v1/payments/{payment_id}/refunds (no body at all when `body` is None)."""
    kwargs = {"headers": auth_headers(key, idem)}
    if body is not None:
        kwargs["json"] = body
    return client.post(f"/api/v1/payments/{payment_id}/refunds", **kwargs)
