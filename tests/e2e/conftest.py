"""The storefront and dashboard in a real browser. Browser fixtures (`browser`, `context`,
`page`, `make_context`, screenshots on failure) come from tests/support/browser.py; every test
in this folder is marked `e2e`. `shop` is the demo shop on its own server, a client app of the
live PayBridge (steps to drive it: tests/e2e/shop_flow.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def shop(app, live_server, emulator, tmp_path):
    """The demo shop on its own port, connected to PayBridge as its own merchant; the emulator's
    webhooks reach PayBridge, PayBridge's notifications reach the shop."""
    from tests.shop.support import running_shop
    from tests.support.payflow import ensure_stripe_webhook_endpoint

    ensure_stripe_webhook_endpoint(emulator, live_server)
    with running_shop(app, tmp_path) as running:
        yield running


@pytest.fixture
def shop_url(shop) -> str:
    return shop.url
