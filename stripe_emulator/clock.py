"""The emulator's clock: wall time plus an offset that tests can advance."""

from __future__ import annotations

import threading
import time


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> int:
        return int(time.time() + self._offset)

    def advance(self, seconds: float) -> int:
        with self._lock:
            self._offset += seconds
        return self.now()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
