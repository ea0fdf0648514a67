"""The one backoff (helper.backoff, shared by the helper and the webhook) and the token bucket's reservations."""

from __future__ import annotations

import pytest

from helper.backoff import EQUAL_JITTER, PLUS_MINUS_20, Backoff
from webhook.kube.ratelimit import TokenBucket


def test_equal_jitter_is_the_default_and_never_exceeds_the_cap() -> None:
    backoff = Backoff(first=0.02, cap=0.1)
    assert backoff.jitter == EQUAL_JITTER
    delays = [backoff.next_delay() for _ in range(50)]
    assert 0.01 <= delays[0] <= 0.02 and 0.02 <= delays[1] <= 0.04
    assert all(d <= 0.1 for d in delays) and all(d >= 0.05 for d in delays[3:])


def test_the_exponent_stops_growing_at_the_cap() -> None:
    backoff = Backoff(first=0.001, cap=1.0, jitter=(1.0, 1.0))
    for _ in range(5000):  # an outage of hours: 2.0**5000 would overflow
        delay = backoff.next_delay()
    assert delay == 1.0 and backoff.attempts == 5000
    backoff.reset()
    assert backoff.attempts == 0 and backoff.next_delay() == 0.001


def test_backoff_rejects_nonsense() -> None:
    for kwargs in ({"first": 0.0}, {"first": 2.0, "cap": 1.0}, {"factor": 0.5}, {"jitter": (1.2, 0.8)}):
        with pytest.raises(ValueError):
            Backoff(**kwargs)  # type: ignore[arg-type]


def test_the_webhook_loops_spelling_is_plus_minus_20_percent() -> None:
    backoff = Backoff(first=1.0, cap=8.0, jitter=PLUS_MINUS_20)
    assert 0.8 <= backoff.next_delay() <= 1.2 and 1.6 <= backoff.next_delay() <= 2.4 and backoff.attempts == 2


def test_reservations_borrow_from_the_future_and_spread_the_callers() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=2, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.5, 1.0])
    assert bucket.take() == pytest.approx(1.5), "take() sees the borrowed tokens"
    now[0] += 1.0
    assert bucket.reserve() == pytest.approx(0.5)
    now[0] += 100
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5]), "refills only up to the burst"
