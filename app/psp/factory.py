"""Chooses the PSP adapter by name; one instance per app, built on first use."""

from __future__ import annotations

from flask import Flask, current_app

from app.psp.base import PaymentProvider


def build_provider(app: Flask, name: str) -> PaymentProvider:
    if name == "stripe":
        # Imported when first chosen: the Stripe SDK is large, and a deployment names its PSPs.
        from app.psp.stripe_adapter import StripeProvider

        return StripeProvider.from_config(app.config)
    raise ValueError(f"unknown PSP {name!r}")


def get_provider(name: str | None = None) -> PaymentProvider:
    """The app's adapter for `name` (default: PSP_NAME)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    name = name or app.config["PSP_NAME"]
    providers = app.extensions.setdefault("paybridge_psp", {})
    if name not in providers:
        providers[name] = build_provider(app, name)
    return providers[name]
