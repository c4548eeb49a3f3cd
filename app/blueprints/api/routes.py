"""Routes: filled in by the payment core issue."""
