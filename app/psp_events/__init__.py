"""What the PSP tells PayBridge, through webhooks or reconciliation's catch-up: every event stored
once by its id, then handed to the handler its type is registered with (`app/wiring.py`)."""
