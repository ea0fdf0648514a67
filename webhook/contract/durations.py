"""Go-style durations in annotations (``90s``, ``2m``, ``1h30m``, ``1.5s``, ``500ms``, bare seconds) -> seconds.

Users write durations the way every other Kubernetes tool takes them (Go's ``time.ParseDuration``); the helper
receives plain seconds (``"12.5"``) so it never has to parse this syntax. Anything negative or longer than a day
is rejected: a day-long drain is a unit mistake (milliseconds written as seconds), not a plan, and the helper
applies the same bound (:data:`MAX_SECONDS` is the helper's). The controller's certificate lifetimes are the one
place where longer durations make sense: :func:`parse_long_duration` reads the same syntax plus days, unbounded.
"""

from __future__ import annotations

import math
import re

from helper.env import MAX_SECONDS
from webhook.contract.messages import quote

__all__ = [
    "EXAMPLE",
    "LONG_EXAMPLE",
    "MAX_SECONDS",
    "DurationError",
    "format_duration",
    "format_seconds",
    "parse_duration",
    "parse_long_duration",
]

EXAMPLE = "e.g. 90s, 2m, 1h30m or 500ms"
LONG_EXAMPLE = "e.g. 90d, 2160h, 30m or 45s"

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign, as Go accepts
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_LONG_UNITS = {**_UNITS, "d": 86400.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_LONG_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h|d)")
_BARE = re.compile(r"\d+\.?\d*|\.\d+")


class DurationError(ValueError):
    """A duration that does not parse or is out of range; the message quotes it and shows good examples."""


def _fail(text: str, reason: str, example: str) -> DurationError:
    return DurationError(f"{quote(text)}: {reason}; {example}")


def _seconds(text: object, part: re.Pattern[str], units: dict[str, float], example: str, longest: float) -> float:
    """Seconds in a Go-style duration or bare seconds, 0..``longest``; DurationError ``'<text>': <why>; <example>``."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise _fail(repr(text), "not a duration", example)
    if isinstance(text, int | float):
        seconds = float(text)
        shown = repr(text)
    else:
        shown = text
        body = text.strip()
        if body.startswith("-"):
            raise _fail(text, "must not be negative", example)
        body = body.removeprefix("+")
        if not body:
            raise _fail(text, "empty", example)
        if _BARE.fullmatch(body):
            seconds = float(body)
        else:
            seconds = 0.0
            position = 0
            for match in part.finditer(body):
                if match.start() != position:
                    break
                seconds += float(match.group(1)) * units[match.group(2)]
                position = match.end()
            if position != len(body) or position == 0:
                raise _fail(text, "not a duration", example)
    if not math.isfinite(seconds):
        raise _fail(shown, "not a finite duration", example)
    if seconds < 0:
        raise _fail(shown, "must not be negative", example)
    if seconds > longest:
        raise _fail(shown, f"longer than {format_duration(longest)}", example)
    return seconds


def parse_duration(text: object) -> float:
    """Seconds in ``text``: a Go duration (``1h30m``, ``1.5s``, ``500ms``) or bare seconds (``20``, ``0.5``).

    Raises :class:`DurationError` for anything else, for negative values and for more than 24h.
    """
    return _seconds(text, _PART, _UNITS, EXAMPLE, MAX_SECONDS)


def parse_long_duration(text: object) -> float:
    """Seconds in a lifetime such as ``87600h``, ``90d``, ``1h30m`` or bare seconds: :func:`parse_duration`'s
    syntax plus ``d`` (24h), without its one-day bound. Raises :class:`DurationError`."""
    return _seconds(text, _LONG_PART, _LONG_UNITS, LONG_EXAMPLE, math.inf)


def format_seconds(seconds: float) -> str:
    """Plain seconds for an environment variable: ``"10"``, ``"12.5"``, ``"0.001"`` (what helper/env.py reads)."""
    if seconds.is_integer():
        return str(int(seconds))
    return f"{seconds:.9f}".rstrip("0").rstrip(".") or "0"  # never an exponent: "0.00001", not "1e-05"


def format_duration(seconds: float) -> str:
    """A Go-style rendering for messages: ``45s``, ``2m30s``, ``1h``, ``500ms``."""
    if seconds < 1 and seconds > 0:
        millis = seconds * 1000
        return f"{millis:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if minutes:
        out += f"{int(minutes)}m"
    if secs or not out:
        out += f"{secs:g}s"
    return out
