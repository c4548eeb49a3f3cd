"""Reconciliation: asks the PSP for the truth and finishes every payment (DESIGN.md)."""
