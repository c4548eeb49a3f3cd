"""`flask stripe setup` and `flask stripe check` against the emulator over HTTP, in both modes:
setup makes each mode's webhook endpoint as PayBridge needs it and a second run changes nothing;
check passes then, and names every wrong key, endpoint, event type, version and secret."""

from __future__ import annotations

import re

import pytest
import requests

from app.psp.stripe_adapter import STRIPE_API_VERSION
from app.psp_events.intake import handled_event_types
from app.psp_events.setup import FINGERPRINT_KEY, fingerprint, webhook_url

pytestmark = pytest.mark.usefixtures("emu")

SECRET_LINE = re.compile(r"^(STRIPE_(TEST|LIVE)_WEBHOOK_SECRET)=(whsec_\S+)$", re.M)


def stripe_api(emu, livemode: bool, method: str, path: str, **data) -> dict:
    key = emu.live_api_key if livemode else emu.api_key
    answer = requests.request(
        method,
        f"{emu.url}{path}",
        data=data or None,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def endpoints(emu, livemode: bool) -> list[dict]:
    return stripe_api(emu, livemode, "GET", "/v1/webhook_endpoints", limit=100)["data"]


def use_secrets(app, monkeypatch, output: str) -> None:
    """What the operator does with setup's output: set the printed secrets, restart."""
    for _setting, mode, secret in SECRET_LINE.findall(output):
        monkeypatch.setitem(app.config, f"STRIPE_{mode}_WEBHOOK_SECRETS", [secret])
    app.extensions.pop("paybridge_psp", None)


def use_key(app, monkeypatch, setting: str, key: str) -> None:
    monkeypatch.setitem(app.config, setting, key)
    app.extensions.pop("paybridge_psp", None)


@pytest.fixture
def set_up(app, runner, monkeypatch, emu):
    """Both modes set up, and the printed secrets in the app's configuration."""
    result = runner.invoke(args=["stripe", "setup"])
    assert result.exit_code == 0, result.output
    use_secrets(app, monkeypatch, result.output)
    return result


def test_setup_makes_each_modes_endpoint_and_check_then_passes(app, runner, emu, set_up):
    printed = SECRET_LINE.findall(set_up.output)
    assert [(setting, mode) for setting, mode, _ in printed] == [
        ("STRIPE_TEST_WEBHOOK_SECRET", "TEST"),
        ("STRIPE_LIVE_WEBHOOK_SECRET", "LIVE"),
    ]
    with app.app_context():
        url, events = webhook_url(), handled_event_types()
    for livemode, (_, _, secret) in zip((False, True), printed, strict=True):
        [endpoint] = endpoints(emu, livemode)
        assert endpoint["url"] == url and endpoint["livemode"] is livemode
        assert endpoint["enabled_events"] == events and endpoint["status"] == "enabled"
        assert endpoint["api_version"] == STRIPE_API_VERSION
        assert endpoint["metadata"] == {FINGERPRINT_KEY: fingerprint(secret)}
        assert secret not in str(endpoint)

    result = runner.invoke(args=["stripe", "check"])
    assert result.exit_code == 0, result.output
    assert "test mode: ok" in result.output and "live mode: ok" in result.output


def test_the_event_types_are_the_ones_the_intake_handles_at_the_webhook_route(app):
    with app.app_context():
        url, events = webhook_url(), handled_event_types()
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert url.removeprefix(app.config["PUBLIC_BASE_URL"].rstrip("/")) in routes
    assert {"checkout.session.completed", "charge.refunded", "invoice.paid"} <= set(events)
    assert "payment_intent.succeeded" not in events  # stored and unhandled: not asked for


def test_a_second_setup_changes_nothing_and_says_so(app, runner, emu, set_up):
    before = [endpoints(emu, False), endpoints(emu, True)]
    result = runner.invoke(args=["stripe", "setup"])
    assert result.exit_code == 0, result.output
    assert result.output.count("nothing changed") == 2
    assert "whsec_" not in result.output
    assert [endpoints(emu, False), endpoints(emu, True)] == before


def test_a_configured_secret_that_is_not_the_endpoints_fails_the_check(app, runner, set_up):
    before_restart = runner.invoke(args=["stripe", "check", "--mode", "live"])
    assert before_restart.exit_code == 0
    app.config["STRIPE_LIVE_WEBHOOK_SECRETS"] = ["whsec_some_other_secret"]
    result = runner.invoke(args=["stripe", "check"])
    assert result.exit_code == 1
    assert "test mode: ok" in result.output
    assert "live mode: STRIPE_LIVE_WEBHOOK_SECRET is not the signing secret of endpoint" in (
        result.output
    )
    # While rotating, the endpoint's secret among those configured is enough.
    secret = SECRET_LINE.findall(set_up.output)[1][2]
    app.config["STRIPE_LIVE_WEBHOOK_SECRETS"] = ["whsec_some_other_secret", secret]
    assert runner.invoke(args=["stripe", "check"]).exit_code == 0


def test_a_mode_whose_secret_is_not_set_yet_fails_the_check_saying_what_to_set(app, runner, set_up):
    # A first deployment: the key is set, setup made the endpoint, its secret not set yet.
    app.config["STRIPE_LIVE_WEBHOOK_SECRETS"] = None
    app.extensions.pop("paybridge_psp", None)
    result = runner.invoke(args=["stripe", "check"])
    assert result.exit_code == 1
    assert "test mode: ok" in result.output
    assert "live mode: STRIPE_LIVE_WEBHOOK_SECRET is not set: every live-mode event is refused" in (
        result.output
    )
    assert "set STRIPE_LIVE_WEBHOOK_SECRET to the secret `flask stripe setup` printed" in (
        result.output
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("sk_test_emulator", "live mode: STRIPE_LIVE_SECRET_KEY is a test-mode key at Stripe"),
        (
            "sk_unknown_x",
            "live mode: STRIPE_LIVE_SECRET_KEY was refused by Stripe (Invalid API Key",
        ),
    ],
)
def test_a_wrong_key_fails_the_check_and_setup_touches_nothing(
    app, runner, monkeypatch, emu, set_up, key, message
):
    use_key(app, monkeypatch, "STRIPE_LIVE_SECRET_KEY", key)
    result = runner.invoke(args=["stripe", "check"])
    assert result.exit_code == 1
    assert message in result.output and "Fix: set STRIPE_LIVE_SECRET_KEY to a" in result.output
    assert "test mode: ok" in result.output

    test_endpoints = endpoints(emu, False)
    again = runner.invoke(args=["stripe", "setup"])
    assert again.exit_code == 1 and message in again.output
    assert endpoints(emu, False) == test_endpoints  # test mode: nothing to change, nothing done


def test_a_missing_event_type_fails_the_check_until_setup_adds_it(app, runner, emu, set_up):
    [endpoint] = endpoints(emu, True)
    with app.app_context():
        fewer = [t for t in handled_event_types() if t != "invoice.paid"]
    stripe_api(
        emu, True, "POST", f"/v1/webhook_endpoints/{endpoint['id']}", **{"enabled_events[]": fewer}
    )

    result = runner.invoke(args=["stripe", "check"])
    assert result.exit_code == 1
    assert (
        f"live mode: endpoint {endpoint['id']} does not listen to invoice.paid: PayBridge never "
        "hears of them. Fix: run `flask stripe setup`." in result.output
    )
    fixed = runner.invoke(args=["stripe", "setup"])
    assert fixed.exit_code == 0, fixed.output
    assert f"live mode: endpoint {endpoint['id']} now listens to invoice.paid" in fixed.output
    assert runner.invoke(args=["stripe", "check"]).exit_code == 0


def test_extra_events_a_disabled_endpoint_and_a_duplicate_are_reported_and_set_right(
    app, runner, emu, set_up
):
    [kept] = endpoints(emu, False)
    with app.app_context():
        url, events = webhook_url(), handled_event_types()
    stripe_api(
        emu, False, "POST", f"/v1/webhook_endpoints/{kept['id']}",
        **{"enabled_events[]": [*events, "customer.created"], "disabled": "true"},
    )  # fmt: skip
    duplicate = stripe_api(
        emu, False, "POST", "/v1/webhook_endpoints", url=url, **{"enabled_events[]": ["*"]}
    )

    check = runner.invoke(args=["stripe", "check"])
    assert check.exit_code == 1
    for line in (
        f"test mode: 2 webhook endpoints at {url} ({duplicate['id']}, {kept['id']})",
        f"test mode: endpoint {kept['id']} is disabled: Stripe sends it nothing",
        f"test mode: endpoint {kept['id']} also listens to customer.created, which PayBridge",
    ):
        assert line in check.output
    assert "live mode: ok" in check.output

    setup = runner.invoke(args=["stripe", "setup"])
    assert setup.exit_code == 0, setup.output
    assert f"deleted endpoint {duplicate['id']}: a second one at the same URL" in setup.output
    assert f"enabled endpoint {kept['id']}" in setup.output
    assert f"endpoint {kept['id']} no longer listens to customer.created" in setup.output
    [now] = endpoints(emu, False)
    assert now["id"] == kept["id"] and now["status"] == "enabled"
    assert now["enabled_events"] == events
    assert runner.invoke(args=["stripe", "check"]).exit_code == 0


def test_an_endpoint_made_elsewhere_or_on_another_version_needs_a_rotation(
    app, runner, monkeypatch, emu, set_up
):
    [old] = endpoints(emu, True)
    stripe_api(emu, True, "DELETE", f"/v1/webhook_endpoints/{old['id']}")
    with app.app_context():
        url, events = webhook_url(), handled_event_types()
    by_hand = stripe_api(
        emu, True, "POST", "/v1/webhook_endpoints",
        url=url, api_version="2025-01-27.acacia", **{"enabled_events[]": events},
    )  # fmt: skip

    for command in (["stripe", "check"], ["stripe", "setup"]):
        result = runner.invoke(args=command)
        assert result.exit_code == 1
        assert (
            f"live mode: endpoint {by_hand['id']} renders events in API version "
            f"2025-01-27.acacia, PayBridge is written for {STRIPE_API_VERSION}" in result.output
        )
        assert f"endpoint {by_hand['id']} was not made by `flask stripe setup`" in result.output
        assert "`flask stripe setup --rotate --mode live`" in result.output

    rotated = runner.invoke(args=["stripe", "setup", "--rotate", "--mode", "live"])
    assert rotated.exit_code == 0, rotated.output
    assert f"live mode: deleted endpoint {by_hand['id']} (rotating its secret)" in rotated.output
    assert "test mode" not in rotated.output
    [new] = endpoints(emu, True)
    assert new["api_version"] == STRIPE_API_VERSION
    assert runner.invoke(args=["stripe", "check"]).exit_code == 1  # the old secret still set
    use_secrets(app, monkeypatch, rotated.output)
    assert runner.invoke(args=["stripe", "check"]).exit_code == 0


def test_no_endpoint_yet_fails_the_check_and_rotate_needs_a_mode(runner):
    result = runner.invoke(args=["stripe", "check"])
    assert result.exit_code == 1
    assert "test mode: no webhook endpoint at" in result.output
    assert "live mode: no webhook endpoint at" in result.output
    assert "Fix: run `flask stripe setup`." in result.output
    rotate = runner.invoke(args=["stripe", "setup", "--rotate"])
    assert rotate.exit_code == 2 and "--mode" in rotate.output


def test_an_unconfigured_mode_is_not_checked(app, runner, monkeypatch, emu, set_up):
    use_key(app, monkeypatch, "STRIPE_LIVE_SECRET_KEY", None)
    result = runner.invoke(args=["stripe", "check"])
    assert result.exit_code == 0 and "live mode" not in result.output
    only_live = runner.invoke(args=["stripe", "check", "--mode", "live"])
    assert only_live.exit_code == 1 and "not configured" in only_live.output
