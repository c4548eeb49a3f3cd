"""Shop fixtures around `shop` (tests/conftest.py): the demo shop as its own app and server, a
client of the live PayBridge."""

from __future__ import annotations

import pytest

from tests.shop.support import Shopper


@pytest.fixture
def products(shop):
    """The catalogue: [(id, price, name)] in the shop's order."""
    from demo_shop.catalogue import products_on_sale

    with shop.app.app_context():
        return [(p.id, p.price, p.name) for p in products_on_sale()]


@pytest.fixture
def visitor(shop) -> Shopper:
    """Someone on the shop's pages, not logged in."""
    return Shopper(shop.app.test_client())


@pytest.fixture
def shopper(visitor) -> Shopper:
    """A signed-up, logged-in shopper."""
    response = visitor.signup("ada@example.com")
    assert response.status_code == 303, response.get_data(as_text=True)
    return visitor
