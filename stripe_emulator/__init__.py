"""A stateful local Stripe for offline runs and tests (see README.md)."""

API_VERSION = "2026-10-28.endive"

__all__ = ["API_VERSION"]
