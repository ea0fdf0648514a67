"""Exponential backoff with jitter: the one implementation, for every retry loop of the helper (prewarm, notify,
the start-up wait) and of the webhook (watches, PATCH retries, the work queue, the owner cache).

It lives in the helper because the helper must stay standard-library only and never import ``webhook``, while
``webhook`` may import the helper.

Jitter spreads retries that would otherwise come in lock step: a rollout starts many pods at the same moment, and
without it their prewarm retries and readiness waits would hit the same dependency together; every webhook
replica's watches reconnect at once after an API server restart. The cap keeps recovery quick once the other
side is back.
"""

from __future__ import annotations

import os

from helper.record import field, record

EQUAL_JITTER = (0.5, 1.0)
"""Each delay drawn from [d/2, d] ("equal jitter"): a wide spread, and never above the cap. The helper's loops use
it: their cap bounds how late a poll notices that the app or a dependency is up."""

PLUS_MINUS_20 = (0.8, 1.2)
"""Each delay drawn from [0.8 d, 1.2 d]. The webhook's loops use it: a retry comes about when its step says, give
or take enough to de-synchronise the replicas."""


def _uniform(low: float, high: float) -> float:
    """Uniform in [low, high) from 53 bits of ``os.urandom``: what ``random.uniform`` gives here, without importing
    ``random`` (with ``_sha512`` and ``bisect``, ~140 KB resident in the agent, which runs in every pod)."""
    return low + (high - low) * (int.from_bytes(os.urandom(7), "big") >> 3) / (1 << 53)


@record(slots=True)
class Backoff:
    """Delays ``first * factor**n`` seconds for the n-th delay since :meth:`reset`, capped at ``cap``, each scaled
    by a random factor drawn uniformly from ``jitter`` (low, high)."""

    first: float = 0.25
    cap: float = 5.0
    factor: float = 2.0
    jitter: tuple[float, float] = field(default=EQUAL_JITTER, kw_only=True)
    _exponent: int = field(default=0, init=False, repr=False)
    _attempts: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        low, high = self.jitter
        if self.first <= 0 or self.cap < self.first or self.factor < 1 or not 0 < low <= high:
            raise ValueError("backoff needs 0 < first <= cap, factor >= 1 and 0 < jitter low <= high")

    def next_delay(self) -> float:
        """The delay before the next attempt."""
        ceiling = min(self.cap, self.first * self.factor**self._exponent)
        if ceiling < self.cap:  # stop growing the exponent once capped: a wait may last for hours (factor**n overflows)
            self._exponent += 1
        self._attempts += 1
        return ceiling * _uniform(*self.jitter)

    def reset(self) -> None:
        """After a success: the next delay is ``first`` again."""
        self._exponent = 0
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """Delays handed out since the last :meth:`reset` (0: nothing failed since)."""
        return self._attempts
