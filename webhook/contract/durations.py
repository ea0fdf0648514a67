"""Go-style durations in annotations (``90s``, ``2m``, ``1h30m``, ``1.5s``, ``500ms``, bare seconds) -> seconds.

Users write durations the way every other Kubernetes tool takes them (Go's ``time.ParseDuration``); the helper
receives plain seconds (``"12.5"``) so it never has to parse this syntax. Anything negative or longer than a day
is rejected: a day-long drain is a unit mistake (milliseconds written as seconds), not a plan, and the helper
applies the same bound.
"""

from __future__ import annotations

import math
import re

from webhook.contract.messages import quote

MAX_SECONDS = 86_400.0
"""The longest accepted duration (24h); the helper rejects longer values too (helper/env.py)."""

EXAMPLE = "e.g. 90s, 2m, 1h30m or 500ms"

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
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_BARE = re.compile(r"\d+\.?\d*|\.\d+")


class DurationError(ValueError):
    """A duration that does not parse or is out of range; the message quotes it and shows good examples."""


def _fail(text: str, reason: str) -> DurationError:
    return DurationError(f"{quote(text)}: {reason}; {EXAMPLE}")


def parse_duration(text: object) -> float:
    """Seconds in ``text``: a Go duration (``1h30m``, ``1.5s``, ``500ms``) or bare seconds (``20``, ``0.5``).

    Raises :class:`DurationError` for anything else, for negative values and for more than 24h.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise _fail(repr(text), "not a duration")
    if isinstance(text, int | float):
        seconds = float(text)
        shown = repr(text)
    else:
        shown = text
        body = text.strip()
        if body.startswith("-"):
            raise _fail(text, "must not be negative")
        body = body.removeprefix("+")
        if not body:
            raise _fail(text, "empty")
        if _BARE.fullmatch(body):
            seconds = float(body)
        else:
            seconds = 0.0
            position = 0
            for match in _PART.finditer(body):
                if match.start() != position:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                position = match.end()
            if position != len(body) or position == 0:
                raise _fail(text, "not a duration")
    if not math.isfinite(seconds):
        raise _fail(shown, "not a finite duration")
    if seconds < 0:
        raise _fail(shown, "must not be negative")
    if seconds > MAX_SECONDS:
        raise _fail(shown, "longer than 24h")
    return seconds


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
