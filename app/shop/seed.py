"""Demo data: the shop's merchant at PayBridge, its catalogue, and dashboard logins.

Safe to run again: it creates what is missing and reports what already existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, Merchant, User
from app.shop.models import Product
from app.shop.services import DEMO_MERCHANT_NAME, MERCHANT_SETTING, demo_merchant, set_setting

MERCHANT_LOGIN = ("merchant@example.com", "demo-password")
OPERATOR_LOGIN = ("operator@example.com", "operator-password")

# slug, name, price in cents (EUR), image, description
PRODUCTS = [
    ("alpine-sunrise", "Alpine Sunrise", 2900, "alpine-sunrise.svg",
     "First light over a snow-capped ridge, printed on 30×40 cm matte archival paper."),
    ("ocean-swell", "Ocean Swell", 2400, "ocean-swell.svg",
     "Layered Atlantic waves at dusk. 30×40 cm, giclée print on cotton rag."),
    ("city-lights", "City Lights", 3400, "city-lights.svg",
     "A skyline after rain, windows lit one by one. 40×50 cm, satin finish."),
    ("autumn-forest", "Autumn Forest", 2600, "autumn-forest.svg",
     "Birches and firs in October colours. 30×40 cm, matte archival paper."),
    ("desert-dunes", "Desert Dunes", 2200, "desert-dunes.svg",
     "Wind-carved dunes under a pale noon sun. 30×40 cm, warm-tone matte."),
    ("northern-lights", "Northern Lights", 3900, "northern-lights.svg",
     "Green auroras over a frozen lake. 40×50 cm, deep-black satin paper."),
    ("lavender-fields", "Lavender Fields", 2500, "lavender-fields.svg",
     "Rows of lavender running to the hills of Provence. 30×40 cm, matte."),
    ("harbour-lighthouse", "Harbour Lighthouse", 2800, "harbour-lighthouse.svg",
     "A red-and-white lighthouse guarding a quiet harbour. 30×40 cm, satin."),
]  # fmt: skip


@dataclass
class SeedReport:
    lines: list[str] = field(default_factory=list)
    api_key: str | None = None
    merchant_id: int | None = None

    def add(self, line: str) -> None:
        self.lines.append(line)


def seed_demo(public_base_url: str) -> SeedReport:
    """Create the demo merchant, products and logins that are missing; the caller commits."""
    report = SeedReport()
    notify_url = f"{public_base_url.rstrip('/')}/shop/notify"
    merchant = _seed_merchant(notify_url, report)
    report.merchant_id = merchant.id
    _seed_products(report)
    _seed_user(MERCHANT_LOGIN, User.ROLE_MERCHANT, merchant, report)
    _seed_user(OPERATOR_LOGIN, User.ROLE_OPERATOR, None, report)
    return report


def _seed_merchant(notify_url: str, report: SeedReport) -> Merchant:
    merchant = demo_merchant()
    if merchant is None:
        merchant = Merchant(name=DEMO_MERCHANT_NAME, notify_url=notify_url)
        key, raw = ApiKey.generate(merchant, name="demo")
        db.session.add_all([merchant, key])
        db.session.flush()
        set_setting(MERCHANT_SETTING, str(merchant.id))
        report.api_key = raw
        report.add(f"created merchant {merchant.name!r} (id {merchant.id}), notify {notify_url}")
        return merchant
    if merchant.notify_url != notify_url:
        report.add(f"merchant {merchant.name!r}: notify_url {merchant.notify_url} -> {notify_url}")
        merchant.notify_url = notify_url
    else:
        report.add(f"merchant {merchant.name!r} (id {merchant.id}) already exists")
    return merchant


def _seed_products(report: SeedReport) -> None:
    existing = {p.slug: p for p in db.session.execute(select(Product)).scalars()}
    created = 0
    for position, (slug, name, price, image, description) in enumerate(PRODUCTS):
        if slug in existing:
            continue
        db.session.add(
            Product(
                slug=slug,
                name=name,
                price=price,
                currency="EUR",
                image=image,
                description=description,
                position=position,
                active=True,
            )
        )
        created += 1
    db.session.flush()
    report.add(f"products: {created} created, {len(PRODUCTS) - created} already there")


def _seed_user(login: tuple[str, str], role: str, merchant: Merchant | None, report) -> None:
    email, password = login
    user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    if user is not None:
        report.add(f"dashboard user {email} already exists (password unchanged)")
        return
    user = User(email=email, role=role, merchant_id=merchant.id if merchant else None)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    report.add(f"created dashboard {role} {email} / {password}")
