"""The warm-up weight: how much of its full traffic share a new pod should get t seconds into its ramp.

    w(t) = W * max(min, (t / T) ** k)      for 0 <= t < T
    w(t) = W                               for t >= T (and whenever T <= 0: no ramp)

One formula covers the ramps the ecosystem already uses, so every consumer (the agent's /status, the webhook's
annotations, a registry or mesh adapter) computes the same number from the same (start, T, curve):

- k = 1: Dubbo's linear warm-up;
- k > 1: slow start that accelerates (Sermant's "high-order" curve uses k = 2);
- k < 1: front-loaded; Envoy's slow-start ``aggression`` a maps to k = 1 / a.

``min`` keeps a new pod from getting exactly zero traffic at t = 0 (which would make the ramp never observable);
Envoy's ``min_weight_percent`` and Dubbo's floor of 1 play the same role. This module is pure and dependency-free
because the webhook imports it.
"""

from __future__ import annotations

import math

from helper.record import record

DEFAULT_MIN_FRACTION = 0.10
"""Floor of the ramp as a fraction of the full weight (10%, Envoy's default min_weight_percent)."""


@record(frozen=True, slots=True)
class Curve:
    """Shape of the ramp: exponent ``k`` and floor ``min_fraction`` (0..1)."""

    k: float = 1.0
    min_fraction: float = DEFAULT_MIN_FRACTION

    def __post_init__(self) -> None:
        if not (math.isfinite(self.k) and self.k > 0):
            raise ValueError(f"curve exponent k must be a positive finite number, got {self.k!r}")
        if not (math.isfinite(self.min_fraction) and 0.0 <= self.min_fraction <= 1.0):
            raise ValueError(f"curve floor must be between 0 and 1, got {self.min_fraction!r}")


LINEAR = Curve()
"""Dubbo's linear ramp with the default 10% floor."""


def fraction(elapsed: float, window: float, curve: Curve = LINEAR) -> float:
    """Share of the full weight (between ``curve.min_fraction`` and 1.0) after ``elapsed`` seconds of ``window``.

    Negative or NaN ``elapsed`` (a clock step, a start time in the future) counts as the start of the ramp rather
    than raising: a weight is always needed, and the floor is the safe answer.
    """
    if not window > 0 or elapsed >= window:
        return 1.0
    if not elapsed > 0:
        return curve.min_fraction
    return max(curve.min_fraction, min(1.0, (elapsed / window) ** curve.k))


def weight(elapsed: float, window: float, curve: Curve = LINEAR, full: float = 100.0) -> float:
    """``w(t)``: the weight to give a pod ``elapsed`` seconds into a ``window``-second ramp toward ``full``."""
    if elapsed >= window or not window > 0:
        return full
    return full * fraction(elapsed, window, curve)
