"""Operator endpoints: liveness, readiness naming what is down, Prometheus metrics."""


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["X-Request-Id"].startswith("req_")


def test_readyz_reports_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": True, "redis": True}


def test_readyz_names_redis_when_it_is_down(app, client):
    from app.extensions import get_redis

    good = app.config["REDIS_URL"]
    app.extensions.pop("paybridge_redis", None)
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        response = client.get("/readyz")
    finally:
        app.config["REDIS_URL"] = good
        app.extensions.pop("paybridge_redis", None)
        with app.app_context():
            get_redis()
    assert response.status_code == 503
    assert response.get_json()["down"] == ["redis"]


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


def test_readyz_names_the_database_and_redis_when_both_are_down(dead_db_app):
    response = dead_db_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["down"] == ["database", "redis"]
    assert response.get_json()["checks"] == {"database": False, "redis": False}


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
    from app.models import Notification, utcnow

    merchant, _ = make_merchant(notify_url=None)
    with app.app_context():
        for due_in in (-5, -1, 3600):  # two due, one retrying later
            db.session.add(
                Notification(
                    merchant_id=merchant.id,
                    event_type="payment.succeeded",
                    payload={},
                    next_attempt_at=utcnow() + timedelta(seconds=due_in),
                )
            )
        db.session.commit()
    text = client.get("/metrics").get_data(as_text=True)
    assert "paybridge_notifications_due 2.0" in text
