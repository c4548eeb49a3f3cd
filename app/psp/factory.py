"""Chooses the PSP adapter by name and mode; one instance per app, name and mode, built on
first use. A mode (Stripe's `livemode`: live or test) is configured when its key is set."""

from __future__ import annotations

from flask import Flask, current_app

from app.psp.base import PaymentProvider, PspModeNotConfigured

MODE_KEYS = {False: "STRIPE_TEST_SECRET_KEY", True: "STRIPE_LIVE_SECRET_KEY"}


def build_provider(app: Flask, name: str, livemode: bool = False) -> PaymentProvider:
    if name == "stripe":
        # Imported when first chosen: the Stripe SDK is large, and a deployment names its PSPs.
        from app.psp.stripe_adapter import StripeProvider

        return StripeProvider.from_config(app.config, livemode=livemode)
    raise ValueError(f"unknown PSP {name!r}")


def configured_modes(app: Flask | None = None) -> list[bool]:
    """The modes this deployment runs, as `livemode` values (test first)."""
    config = (app or current_app).config
    return [live for live, key in MODE_KEYS.items() if config.get(key)]


def get_provider(name: str | None = None, *, livemode: bool = False) -> PaymentProvider:
    """The app's adapter for `name` (default: PSP_NAME) in one mode (default: test).
    Raises PspModeNotConfigured for a mode without its key."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    name = name or app.config["PSP_NAME"]
    providers = app.extensions.setdefault("paybridge_psp", {})
    provider = providers.get((name, livemode))
    if provider is None:
        if not app.config.get(MODE_KEYS[livemode]):
            raise PspModeNotConfigured(livemode)
        provider = providers[(name, livemode)] = build_provider(app, name, livemode)
    return provider
