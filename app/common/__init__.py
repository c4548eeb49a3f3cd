"""Rules every domain shares and none owns: money, Idempotency-Key records and the idempotent
command, lock-conflict retries, list cursors, and hooks. Nothing here imports a domain package."""
