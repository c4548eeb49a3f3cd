"""Operator endpoints: liveness, readiness naming what is down, Prometheus metrics."""


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["X-Request-Id"].startswith("req_")


def test_readyz_reports_each_dependency_what_it_degrades_and_whether_it_is_critical(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and body["down"] == []
    assert set(body["checks"]) == {"database", "redis"}
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["critical"] is True
    assert body["checks"]["redis"] == {
        "ok": True,
        "critical": False,
        "degrades": body["checks"]["redis"]["degrades"],
    }
    assert "rate limits" in body["checks"]["redis"]["degrades"]


def test_readyz_stays_200_while_redis_is_down_and_says_what_that_degrades(app):
    from tests.support.apps import app_with_env

    nothing = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with app_with_env(REDIS_URL=nothing, RATELIMIT_STORAGE_URI=nothing) as no_redis:
        response = no_redis.test_client().get("/readyz")
    assert response.status_code == 200  # a load balancer keeps every web process in rotation
    body = response.get_json()
    assert body["status"] == "degraded" and body["down"] == ["redis"]
    redis = body["checks"]["redis"]
    assert redis["ok"] is False and redis["critical"] is False
    assert redis["detail"] == "no answer (ConnectionError)"  # its kind, never its address
    for what in ("rate limits", "reconciliation", "notifications are not affected"):
        assert what in redis["degrades"]
    assert body["checks"]["database"]["ok"] is True


def test_a_dependency_is_one_more_entry_and_only_a_critical_one_makes_readyz_503(app):
    from app.blueprints.health.readiness import DEPENDENCIES, Dependency, Probe, readiness

    def stripe_setup() -> Probe:
        return Probe(False, "webhook endpoint missing: run flask stripe setup")

    def broken() -> Probe:
        raise RuntimeError("secret-bearing message")

    optional = Dependency("stripe", critical=False, degrades="webhooks", probe=stripe_setup)
    with app.test_request_context():
        body, status = readiness((*DEPENDENCIES, optional))
        assert status == 200 and body["status"] == "degraded" and body["down"] == ["stripe"]
        assert body["checks"]["stripe"] == {
            "ok": False,
            "critical": False,
            "degrades": "webhooks",
            "detail": "webhook endpoint missing: run flask stripe setup",
        }
        plain_pair = Dependency("pair", critical=True, degrades="all", probe=lambda: (True, ""))
        required = Dependency("required", critical=True, degrades="everything", probe=broken)
        body, status = readiness((*DEPENDENCIES, plain_pair, required))
    assert status == 503 and body["status"] == "unavailable" and body["down"] == ["required"]
    assert body["checks"]["pair"]["ok"] is True
    assert body["checks"]["required"]["detail"] == "no answer (RuntimeError)"


def test_metrics_in_prometheus_format(client):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert (
        b'paybridge_http_requests_total{method="GET",route="/healthz",status="200"}'
        in response.data
    )


def test_unknown_path_is_a_json_error_under_the_api(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "NOT_FOUND"


def test_readyz_is_503_when_the_database_is_down(dead_db_app):
    response = dead_db_app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["down"] == ["database", "redis"]
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["detail"] == "no answer (OperationalError)"
    assert "503" in body["checks"]["database"]["degrades"]


def test_metrics_still_answer_when_redis_is_down(dead_db_app):
    response = dead_db_app.test_client().get("/metrics")
    assert response.status_code == 200
    assert b"paybridge_http_requests_total" in response.data


def test_metrics_report_each_queues_depth(app, client):
    from app.tasks import get_queue
    from app.tasks.maintenance import purge_old_records

    with app.app_context():  # no worker runs in this test: the jobs wait
        for _ in range(3):
            get_queue("default").enqueue(purge_old_records)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'paybridge_queue_depth{queue="default"} 3.0' in text
    assert 'paybridge_queue_depth{queue="recon"} 0.0' in text


def test_metrics_report_the_notifications_due(app, client, make_merchant):
    from datetime import timedelta

    from app.extensions import db
    from app.models import Notification, NotificationDelivery, utcnow
    from tests.support.factories import endpoints_of

    merchant, _ = make_merchant(notify_url="https://a.example/notify")
    with app.app_context():
        [endpoint] = endpoints_of(merchant.id, livemode=False)
        for due_in in (-5, -1, 3600):  # two deliveries due, one retrying later
            due_at = utcnow() + timedelta(seconds=due_in)
            db.session.add(
                Notification(
                    merchant_id=merchant.id,
                    event_type="payment.succeeded",
                    payload={},
                    status=Notification.STATUS_PENDING,
                    next_attempt_at=due_at,
                    deliveries=[
                        NotificationDelivery(endpoint_id=endpoint.id, next_attempt_at=due_at)
                    ],
                )
            )
        db.session.commit()
    text = client.get("/metrics").get_data(as_text=True)
    assert "paybridge_notifications_due 2.0" in text
