"""The warm-up weight w(t) = W * max(min, (t/T)^k): known points of each named curve, and its invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helper.specs import parse_curve
from helper.warmup import LINEAR, Curve, fraction, weight


def test_linear_is_dubbo_ramp_with_ten_percent_floor() -> None:
    assert weight(0, 100) == pytest.approx(10)
    assert weight(5, 100) == pytest.approx(10)  # below the floor
    assert weight(50, 100) == pytest.approx(50)
    assert weight(99, 100) == pytest.approx(99)
    assert weight(100, 100) == 100
    assert weight(1000, 100) == 100


def test_high_order_curve_starts_slow() -> None:
    sermant = parse_curve("k=2")
    assert weight(50, 100, sermant) == pytest.approx(25)
    assert weight(50, 100, sermant) < weight(50, 100, LINEAR)


def test_envoy_aggression_front_loads() -> None:
    envoy = parse_curve("aggression=2")
    assert envoy.k == pytest.approx(0.5)
    assert weight(25, 100, envoy) == pytest.approx(50)
    assert weight(25, 100, envoy) > weight(25, 100, LINEAR)


def test_floor_and_full_weight_are_configurable() -> None:
    curve = parse_curve("linear,min=0%")
    assert weight(0, 60, curve) == 0
    assert weight(30, 60, curve, full=200) == pytest.approx(100)
    assert weight(60, 60, curve, full=200) == 200


@pytest.mark.parametrize("window", [0, -5, float("nan")])
def test_no_window_means_full_weight_at_once(window: float) -> None:
    assert weight(0, window) == 100
    assert fraction(0, window) == 1.0


@pytest.mark.parametrize("elapsed", [-10.0, float("nan"), float("-inf")])
def test_clock_oddities_give_the_floor_not_an_error(elapsed: float) -> None:
    assert weight(elapsed, 100) == pytest.approx(10)


@pytest.mark.parametrize(
    ("k", "floor"), [(0, 0.1), (-1, 0.1), (float("inf"), 0.1), (float("nan"), 0.1), (1, -0.1), (1, 1.5)]
)
def test_invalid_curves_are_rejected(k: float, floor: float) -> None:
    with pytest.raises(ValueError):
        Curve(k=k, min_fraction=floor)


curves = st.builds(
    Curve,
    k=st.floats(min_value=0.01, max_value=100, allow_nan=False),
    min_fraction=st.floats(min_value=0, max_value=1, allow_nan=False),
)
windows = st.floats(min_value=1e-3, max_value=1e7, allow_nan=False)
times = st.floats(min_value=-1e8, max_value=1e8, allow_nan=False)
fulls = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)


@given(curve=curves, window=windows, t1=times, t2=times, full=fulls)
def test_weight_never_decreases_with_time(curve: Curve, window: float, t1: float, t2: float, full: float) -> None:
    early, late = sorted((t1, t2))
    assert weight(early, window, curve, full) <= weight(late, window, curve, full)


@given(curve=curves, window=windows, t=times, full=fulls)
def test_weight_is_between_floor_and_full(curve: Curve, window: float, t: float, full: float) -> None:
    value = weight(t, window, curve, full)
    assert full * curve.min_fraction <= value or math.isclose(value, full * curve.min_fraction)
    assert value <= full


@given(curve=curves, window=windows, extra=st.floats(min_value=0, max_value=1e8, allow_nan=False), full=fulls)
def test_weight_is_full_once_the_window_has_passed(curve: Curve, window: float, extra: float, full: float) -> None:
    assert weight(window + extra, window, curve, full) == full
