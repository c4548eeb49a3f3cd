"""The run lock: one reconciliation run at a time across every process and host.

A Redis key set with NX and an expiry, holding a random token: only the holder (compare the
token, in a Lua script) may renew or release it, and a crashed run frees it when it expires.
The run renews it as it goes, so a long run keeps it and a dead one loses it within the TTL.
"""

from __future__ import annotations

import logging
import secrets

from redis import Redis

log = logging.getLogger(__name__)

LOCK_KEY = "paybridge:recon:run-lock"

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LockLost(RuntimeError):
    """The lock expired (the run stalled longer than its TTL) and may now be someone else's."""


class RunLock:
    def __init__(self, redis: Redis, ttl_seconds: int, *, key: str = LOCK_KEY) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl_seconds * 1000)
        self.key = key
        self.token = secrets.token_hex(16)
        self.held = False

    def acquire(self) -> bool:
        """Take the lock if it is free; False when another run holds it."""
        self.held = bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.held

    def renew(self) -> None:
        """Push the expiry on; raise LockLost when the lock is no longer ours."""
        if not self.held:
            raise LockLost("the run lock is not held")
        if not self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms):
            self.held = False
            raise LockLost("the run lock expired and may be held by another run")

    def release(self) -> None:
        if not self.held:
            return
        try:
            self.redis.eval(_RELEASE, 1, self.key, self.token)
        except Exception:  # it expires anyway; never hide the run's own outcome
            log.warning("could not release the recon lock; it expires on its own", exc_info=True)
        self.held = False

    def holder_exists(self) -> bool:
        return bool(self.redis.exists(self.key))
