"""What the benchmark's merchant sends PayBridge to create a payment: the load run's creates and
the CPU probe's are the same request (no aiohttp here: the probe runs in the app's venv)."""

from __future__ import annotations

import json


def create_payment(api_key: str, ref: str, i: int, tag: str, key: str = "") -> tuple[dict, bytes]:
    """Headers and JSON body of POST /api/v1/payments for the i-th payment of a run (`ref` its
    merchant reference, `key` its Idempotency-Key, the reference by default)."""
    body = {
        "merchant_reference": ref,
        "amount": 1000 + i % 5000,
        "currency": "EUR",
        "description": f"Bench order {i}",
        "customer_email": f"shopper{i % 1000}@example.com",
        "success_url": "https://shop.example/ok",
        "cancel_url": "https://shop.example/cancel",
        "metadata": {"bench": tag},
    }
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Idempotency-Key": key or ref,
    }
    return headers, json.dumps(body).encode()
