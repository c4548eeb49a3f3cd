"""The storefront and dashboard in a real browser. Browser fixtures (`browser`, `context`,
`page`, `make_context`, screenshots on failure) come from tests/support/browser.py; every test
in this folder is marked `e2e`. `shop_url` is the seeded demo shop on the live server (steps to
drive it: tests/e2e/shop_flow.py).
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
def shop_url(app, live_server, emulator) -> str:
    """The seeded demo shop on the live server; the emulator's webhooks and the demo merchant's
    notifications reach it."""
    from tests.shop.support import ensure_stripe_webhook_endpoint, seed_shop

    ensure_stripe_webhook_endpoint(emulator, live_server)
    seed_shop(app, live_server.url)
    return live_server.url
