"""Exponential backoff with jitter for every retry in the controller (watches, lease renewals, PATCHes).

Jitter spreads the retries of many replicas (and many pods) after an API server restart, so they do not all
come back in the same millisecond; the cap keeps recovery quick once the server is back.
"""

from __future__ import annotations

import random


class Backoff:
    """``initial * factor**n`` seconds, capped, each with up to +-20% jitter; :meth:`reset` after a success."""

    def __init__(self, initial: float = 0.5, cap: float = 8.0, factor: float = 2.0) -> None:
        if initial <= 0 or cap < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= cap and factor >= 1")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self._attempts = 0

    def next(self) -> float:
        """The delay before the next attempt."""
        base = min(self.cap, self.initial * self.factor**self._attempts)
        self._attempts += 1
        return base * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._attempts = 0

    @property
    def attempts(self) -> int:
        return self._attempts
