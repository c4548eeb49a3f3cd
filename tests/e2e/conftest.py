"""The storefront and dashboard in a real browser. Browser fixtures (`browser`, `context`,
`page`, `make_context`, screenshots on failure) come from tests/support/browser.py; every test
in this folder is marked `e2e`. `shop` (tests/conftest.py) is the demo shop on its own server, a
client app of the live PayBridge (steps to drive it: tests/e2e/shop_flow.py).
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
def shop_url(shop) -> str:
    return shop.url
