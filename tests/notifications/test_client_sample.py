"""The client app in docs/notifications.md works: it verifies, drops repeats and stale news,
and takes refund notifications too (their data is the refund, with no status_version)."""

from __future__ import annotations

import json
import re
import sqlite3
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Notification, PaymentStatus
from app.notifications.delivery import signed_headers

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"


def load_sample(secret: str, monkeypatch, tmp_path) -> types.ModuleType:
    """The doc's Python block, run as the module a merchant would save as client_app.py."""
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    monkeypatch.setenv("PAYBRIDGE_SIGNING_SECRET", secret)
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("client_app")
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    return module


def post(sample, payload: dict, secret: str, msg_id: str | None = None):
    body = json.dumps(payload, separators=(",", ":"))
    headers = signed_headers(msg_id or payload["id"], body, [secret], datetime.now(UTC))
    return sample.app.test_client().post(
        "/paybridge/notifications", data=body.encode(), headers=headers
    )


@pytest.fixture
def merchant_and_payload(app, make_merchant, finish_payment):
    merchant, _ = make_merchant(notify_url="http://127.0.0.1:9/unused")
    _, notification_id = finish_payment(merchant.id, PaymentStatus.SUCCESS)
    with app.app_context():
        payload = db.session.get(Notification, notification_id).payload
        secret = merchant.signing_secret
    return secret, payload


def test_the_documented_client_app_takes_payment_and_refund_news(
    merchant_and_payload, monkeypatch, tmp_path
):
    secret, payment_news = merchant_and_payload
    sample = load_sample(secret, monkeypatch, tmp_path)
    payment = payment_news["data"]
    assert payment_news["type"] == "payment.succeeded"

    assert post(sample, payment_news, secret).status_code == 204
    assert post(sample, payment_news, secret).status_code == 204  # the same webhook-id again
    stale = {**payment_news, "id": "msg_stale", "data": {**payment, "status": "PENDING",
             "status_version": payment["status_version"] - 1}}  # fmt: skip
    assert post(sample, stale, secret).status_code == 204
    refund = {"id": "re_sample1", "object": "refund", "payment_id": payment["id"],
              "amount": 500, "currency": payment["currency"], "status": "succeeded",
              "payment": {**payment, "refunded_amount": 500}}  # fmt: skip
    refund_news = {"id": "msg_refund1", "type": "refund.succeeded",
                   "timestamp": payment_news["timestamp"], "data": refund}  # fmt: skip
    assert post(sample, refund_news, secret).status_code == 204
    reversed_news = {**refund_news, "id": "msg_refund2", "type": "refund.failed",
                     "data": {**refund, "status": "failed"}}  # fmt: skip
    assert post(sample, reversed_news, secret).status_code == 204

    forged = post(sample, {**payment_news, "id": "msg_forged"}, "whsec_" + "A" * 32)
    assert forged.status_code == 400

    sample.db.close()
    rows = sqlite3.connect(tmp_path / "client_app.sqlite3")
    assert rows.execute("SELECT id, status, version FROM payments").fetchall() == [
        (payment["id"], "SUCCESS", payment["status_version"])
    ]
    assert rows.execute("SELECT id, payment_id, status FROM refunds").fetchall() == [
        ("re_sample1", payment["id"], "failed")
    ]
    seen = {r[0] for r in rows.execute("SELECT webhook_id FROM seen")}
    assert seen == {payment_news["id"], "msg_stale", "msg_refund1", "msg_refund2"}
    rows.close()
