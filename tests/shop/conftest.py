"""Shop fixtures: the seeded demo merchant and catalogue, reachable over real HTTP."""

from __future__ import annotations

import pytest

from tests.shop.support import Shopper, ensure_stripe_webhook_endpoint, seed_shop


@pytest.fixture
def shop(app, live_server, emulator):
    """The demo shop seeded with notify_url on this run's live server; returns the SeedReport."""
    ensure_stripe_webhook_endpoint(emulator, live_server)
    return seed_shop(app, live_server.url)


@pytest.fixture
def products(app, shop):
    from sqlalchemy import select

    from app.extensions import db
    from app.shop.models import Product

    with app.app_context():
        rows = db.session.execute(select(Product).order_by(Product.position)).scalars().all()
        result = [(p.id, p.price, p.name) for p in rows]
        db.session.remove()
    return result


@pytest.fixture
def shopper(client, shop):
    """A signed-up, logged-in shopper."""
    person = Shopper(client)
    response = person.signup("ada@example.com")
    assert response.status_code == 303, response.get_data(as_text=True)
    return person
