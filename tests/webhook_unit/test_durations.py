"""Go-style durations: what users write in annotations, turned into the seconds the helper reads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import helper.env
from webhook.contract.durations import (
    MAX_SECONDS,
    DurationError,
    format_duration,
    format_seconds,
    parse_duration,
    parse_long_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("2m", 120),
        ("1h30m", 5400),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("0", 0),
        ("0s", 0),
        ("20", 20),
        ("0.25", 0.25),
        (" 10s ", 10),
        ("+5s", 5),
        ("1h0m30s", 3630),
        ("1m1m", 120),
        ("250us", 0.00025),
        ("250\u00b5s", 0.00025),
        ("3000ns", 0.000003),
        ("24h", 86400),
        (".5s", 0.5),
        (15, 15),
        (2.5, 2.5),
    ],
)
def test_accepts_go_durations_and_bare_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-5s", "negative"),
        ("-1", "negative"),
        ("25h", "24h"),
        ("86401", "24h"),
        ("1e9", "not a duration"),
        ("", "empty"),
        ("  ", "empty"),
        ("10x", "not a duration"),
        ("s", "not a duration"),
        ("5 s", "not a duration"),
        ("1h-5m", "not a duration"),
        ("ten seconds", "not a duration"),
        ("nan", "not a duration"),
        ("inf", "not a duration"),
    ],
)
def test_rejects_with_the_value_the_reason_and_an_example(text: str, reason: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    message = str(info.value)
    assert reason in message
    assert f"'{text}'" in message
    assert "e.g." in message and "90s" in message


@pytest.mark.parametrize("value", [True, None, [1], {"a": 1}, float("nan"), float("inf"), -3])
def test_rejects_values_that_are_not_text_or_numbers(value: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(value)


def test_is_a_value_error_so_callers_can_catch_one_type() -> None:
    assert issubclass(DurationError, ValueError)


def test_format_seconds_is_what_the_helper_parses() -> None:
    assert format_seconds(10.0) == "10"
    assert format_seconds(12.5) == "12.5"
    assert format_seconds(0.0) == "0"
    assert float(format_seconds(0.001)) == 0.001


@given(st.floats(min_value=0, max_value=MAX_SECONDS, allow_nan=False))
def test_format_seconds_round_trips_through_parse(seconds: float) -> None:
    assert parse_duration(format_seconds(seconds)) == pytest.approx(seconds, rel=1e-9, abs=1e-9)


@given(st.integers(min_value=0, max_value=23), st.integers(min_value=0, max_value=59),
       st.integers(min_value=0, max_value=59))
def test_format_duration_round_trips_whole_seconds(hours: int, minutes: int, seconds: int) -> None:
    total = hours * 3600 + minutes * 60 + seconds
    assert parse_duration(format_duration(float(total))) == total


def test_the_bound_is_the_helpers() -> None:
    assert MAX_SECONDS == helper.env.MAX_SECONDS == 86_400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # what the controller's own parser took before it used this module
        ("87600h", 87600 * 3600),
        ("90d", 90 * 86400),
        ("1.5d", 1.5 * 86400),
        ("1h30m", 5400),
        ("45", 45),
        (" 45 ", 45),
        ("1.", 1),
        ("500ms", 0.5),
        ("0", 0),
        # and the rest of the annotation syntax
        ("2d12h", 2.5 * 86400),
        (".5d", 43200),
        ("250us", 0.00025),
        ("+30s", 30),
    ],
)
def test_long_durations_take_days_and_have_no_day_bound(text: str, seconds: float) -> None:
    assert parse_long_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("x", "not a duration"), ("", "empty"), ("-5s", "must not be negative"), ("1h30", "not a duration")],
)
def test_long_duration_errors_quote_the_value_and_show_lifetimes(text: str, reason: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_long_duration(text)
    assert str(info.value) == f"'{text}': {reason}; e.g. 90d, 2160h, 30m or 45s"


def test_annotations_take_no_days() -> None:
    with pytest.raises(DurationError, match="not a duration"):
        parse_duration("1d")
