"""The shop is a client app of PayBridge and nothing more: it imports nothing of PayBridge's, and
PayBridge serves no shop page, in production least of all."""

from __future__ import annotations

import ast
from pathlib import Path

import demo_shop

SHOP_PACKAGE = Path(demo_shop.__file__).parent


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module)
    return modules


def test_the_shop_imports_nothing_from_paybridge_or_the_emulator():
    sources = sorted(SHOP_PACKAGE.rglob("*.py"))
    assert len(sources) > 10  # the walk found the package

    offending = {
        f"{path.relative_to(SHOP_PACKAGE)}: {module}"
        for path in sources
        for module in imported_modules(path)
        if module.split(".")[0] in ("app", "stripe_emulator", "tests", "wsgi", "worker")
    }

    assert offending == set()


def test_the_shop_has_its_own_templates_and_static_files():
    assert (SHOP_PACKAGE / "templates" / "base.html").exists()
    assert sorted(p.name for p in (SHOP_PACKAGE / "static" / "products").glob("*.svg"))
    app_dir = SHOP_PACKAGE.parent / "app"
    assert not (app_dir / "shop").exists()
    assert not (app_dir / "templates" / "shop").exists()
    assert not (app_dir / "static" / "shop").exists()


def test_paybridge_in_production_serves_no_shop_page_and_sends_visitors_to_the_dashboard(
    production_app,
):
    client = production_app.test_client()

    home = client.get("/")

    assert home.status_code == 302
    assert home.headers["Location"] == "/dashboard/"
    for path in ("/products/alpine-sunrise", "/cart", "/account/signup", "/orders", "/notify",
                 "/shop/notify", "/subscribe/print-club", "/static/shop/shop.css"):  # fmt: skip
        assert client.get(path).status_code == 404, path
    endpoints = {rule.endpoint for rule in production_app.url_map.iter_rules()}
    assert not [e for e in endpoints if e.startswith(("shop", "notify"))]
    assert "seed-demo" not in production_app.cli.commands


def test_paybridge_in_the_suite_serves_no_shop_page_either(client):
    assert client.get("/").headers["Location"] == "/dashboard/"
    assert client.get("/cart").status_code == 404
