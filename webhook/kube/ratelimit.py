"""A token bucket: at most ``burst`` actions at once, refilled at ``rate`` per second.

Some actions must stay slow however many become due at once: evictions (a namespace that was enabled with a
hundred running pods, or a webhook outage that let a whole scale-up through uninjected, must not turn into a
hundred simultaneous evictions), and a work queue's retries once the API server answers again after an outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``take()`` returns 0 when a token was taken, else the seconds until one will be available (and takes none);
    ``reserve()`` always takes one."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def reserve(self) -> float:
        """Take a token now, borrowing from the future when there is none; returns the seconds until the action
        may run (0 when a token was there). Unlike :meth:`take`, every call counts: N callers that find the bucket
        empty are spread ``1/rate`` apart instead of all coming back at the same moment."""
        with self._lock:
            self._refill()
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
