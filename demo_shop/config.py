"""The shop's settings: defaults, then the instance file `init` writes, then SHOP_* variables.

    SHOP_PAYBRIDGE_URL             where PayBridge is (default http://127.0.0.1:5000)
    SHOP_PAYBRIDGE_API_KEY         the merchant's API key (pbk_…)
    SHOP_PAYBRIDGE_ORDERS_SIGNING_SECRET, SHOP_PAYBRIDGE_REFUNDS_SIGNING_SECRET
                                   the secrets of the shop's two notification endpoints
                                   (demo_shop/endpoints.py; whsec_…; while PayBridge rotates
                                   one, both, comma-separated); `init` creates the endpoints
                                   and stores their secrets
    SHOP_PAYBRIDGE_SIGNING_SECRET  a shop connected before endpoints: its notify URL's secret
    SHOP_PUBLIC_URL                where shoppers and PayBridge reach the shop: success, cancel
                                   and notify URLs are built from it (default
                                   http://127.0.0.1:5001)
    SHOP_SECRET_KEY                signs the shop's session cookies
    SHOP_DATABASE_URL              the shop's store (default sqlite:///instance/demo_shop.sqlite3)
    SHOP_CATCH_UP_ON_START         1: pull the events missed while stopped when the app starts
                                   (`python -m demo_shop run` sets it; demo_shop/catch_up.py)

Everything is prefixed SHOP_ so the shop's settings never mix with PayBridge's own (the demo
runs both from one shell). The instance file (`instance/demo_shop.json`) is where
`python -m demo_shop init` keeps the secrets it was given or generated, so the shop survives a
restart without anyone exporting them again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SETTINGS_FILE = "demo_shop.json"

ENVIRONMENT = {
    "SHOP_PAYBRIDGE_URL": "PAYBRIDGE_URL",
    "SHOP_PAYBRIDGE_API_KEY": "PAYBRIDGE_API_KEY",
    "SHOP_PAYBRIDGE_SIGNING_SECRET": "PAYBRIDGE_SIGNING_SECRET",
    "SHOP_PAYBRIDGE_ORDERS_SIGNING_SECRET": "PAYBRIDGE_ORDERS_SIGNING_SECRET",
    "SHOP_PAYBRIDGE_REFUNDS_SIGNING_SECRET": "PAYBRIDGE_REFUNDS_SIGNING_SECRET",
    "SHOP_PUBLIC_URL": "PUBLIC_URL",
    "SHOP_SECRET_KEY": "SECRET_KEY",
    "SHOP_DATABASE_URL": "SQLALCHEMY_DATABASE_URI",
    "SHOP_CATCH_UP_ON_START": "CATCH_UP_ON_START",
}

DEFAULTS = {
    "PAYBRIDGE_URL": "http://127.0.0.1:5000",
    "PAYBRIDGE_API_KEY": None,
    "PAYBRIDGE_SIGNING_SECRET": None,
    "PAYBRIDGE_ORDERS_SIGNING_SECRET": None,
    "PAYBRIDGE_REFUNDS_SIGNING_SECRET": None,
    "PUBLIC_URL": "http://127.0.0.1:5001",
    "SECRET_KEY": None,
    "CATCH_UP_ON_START": False,
    # Login and sign-up limits are counted in this process (the shop runs as one).
    "RATELIMIT_STORAGE_URI": "memory://",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
}


def load_settings(instance_path: str) -> dict:
    """Every setting the shop reads, each from the strongest source that has it."""
    settings = dict(DEFAULTS)
    settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{Path(instance_path) / 'demo_shop.sqlite3'}"
    settings.update(read_instance_settings(instance_path))
    for variable, key in ENVIRONMENT.items():
        if os.environ.get(variable):
            settings[key] = os.environ[variable]
    return settings


def read_instance_settings(instance_path: str) -> dict:
    path = Path(instance_path) / SETTINGS_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def save_instance_settings(instance_path: str, **values) -> Path:
    """Merge `values` into the instance file, readable by this user only (it holds secrets)."""
    path = Path(instance_path) / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {**read_instance_settings(instance_path), **values}
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return path


def signing_secrets(value: str | None) -> list[str]:
    """`whsec_a` or `whsec_new,whsec_old` (during a rotation) as a list."""
    return [secret.strip() for secret in (value or "").split(",") if secret.strip()]
