"""A test event sent to an endpoint, as the API answers it: what was sent, what came back."""

from __future__ import annotations

from app.models import EndpointTestEvent, iso


def endpoint_test_to_dict(test: EndpointTestEvent, endpoint_public_id: str) -> dict:
    sent = test.request_headers is not None
    return {
        "id": test.public_id,
        "object": "notification_endpoint_test",
        "endpoint_id": endpoint_public_id,
        "type": test.event_type,
        "sent_at": iso(test.sent_at),
        "url": test.url,
        # delivered: a 2xx in time; failed: anything else; refused: not sent (the URL's checks)
        "status": "delivered" if test.ok else ("failed" if sent else "refused"),
        "error": test.error,
        "duration_ms": test.duration_ms,
        "request": {"headers": test.request_headers, "body": test.request_body} if sent else None,
        "response": (
            {
                "status": test.status_code,
                "headers": test.response_headers or {},
                "body": test.response_body,
            }
            if test.status_code is not None
            else None
        ),
    }
