"""Settling payment conflicts: PSP facts PayBridge recorded but could not apply (issue 4)."""
