"""What the shop sells: eight photo prints (a table) and one subscription plan (in code)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from demo_shop.extensions import db
from demo_shop.models import Product

# slug, name, price in cents (EUR), description; the image is static/products/<slug>.svg
PRINTS = [
    ("alpine-sunrise", "Alpine Sunrise", 2900,
     "First light over a snow-capped ridge, printed on 30×40 cm matte archival paper."),
    ("ocean-swell", "Ocean Swell", 2400,
     "Layered Atlantic waves at dusk. 30×40 cm, giclée print on cotton rag."),
    ("city-lights", "City Lights", 3400,
     "A skyline after rain, windows lit one by one. 40×50 cm, satin finish."),
    ("autumn-forest", "Autumn Forest", 2600,
     "Birches and firs in October colours. 30×40 cm, matte archival paper."),
    ("desert-dunes", "Desert Dunes", 2200,
     "Wind-carved dunes under a pale noon sun. 30×40 cm, warm-tone matte."),
    ("northern-lights", "Northern Lights", 3900,
     "Green auroras over a frozen lake. 40×50 cm, deep-black satin paper."),
    ("lavender-fields", "Lavender Fields", 2500,
     "Rows of lavender running to the hills of Provence. 30×40 cm, matte."),
    ("harbour-lighthouse", "Harbour Lighthouse", 2800,
     "A red-and-white lighthouse guarding a quiet harbour. 30×40 cm, satin."),
]  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """A subscription: PayBridge charges `price` every `interval_count` `interval`s (RECC)."""

    slug: str
    name: str
    price: int
    currency: str
    interval: str  # day | week | month | year
    interval_count: int
    description: str

    @property
    def every(self) -> str:
        """ "month", or "3 months"."""
        if self.interval_count == 1:
            return self.interval
        return f"{self.interval_count} {self.interval}s"


PLANS = {
    "print-club": Plan(
        slug="print-club",
        name="Print of the Month Club",
        price=1900,
        currency="EUR",
        interval="month",
        interval_count=1,
        description="A new 30×40 cm archival print in your letterbox every month. Cancel any time.",
    ),
}


def add_missing_prints() -> int:
    """Put the prints that are not in the store yet into it; how many were added."""
    existing = set(db.session.scalars(select(Product.slug)))
    added = 0
    for position, (slug, name, price, description) in enumerate(PRINTS):
        if slug in existing:
            continue
        db.session.add(
            Product(
                slug=slug,
                name=name,
                price=price,
                currency="EUR",
                image=f"{slug}.svg",
                description=description,
                position=position,
            )
        )
        added += 1
    db.session.flush()
    return added


def products_on_sale() -> list[Product]:
    return list(
        db.session.scalars(
            select(Product).where(Product.active.is_(True)).order_by(Product.position, Product.id)
        )
    )


def product_by_slug(slug: str) -> Product | None:
    return db.session.scalar(select(Product).where(Product.slug == slug, Product.active.is_(True)))
