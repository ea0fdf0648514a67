"""Exponential backoff with jitter, shared by every retry loop of the helper.

Jitter matters here more than usual: a rollout starts many pods at the same moment, and without it their prewarm
retries and readiness waits would hit the same dependency in lock step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays ``first * factor**n`` capped at ``cap``, each drawn from [d/2, d] ("equal jitter")."""

    first: float = 0.25
    cap: float = 5.0
    factor: float = 2.0
    _attempt: int = field(default=0, init=False)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.first * self.factor**self._attempt)
        if ceiling < self.cap:  # stop growing the exponent once capped: a wait may last for hours
            self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0
