"""Short, one-line messages for users: admission warnings, validation errors and CLI diagnostics.

Kubernetes prints admission warnings on one line and may truncate or drop long or non-printable ones, so every
message the core produces goes through here: user values are quoted with control characters escaped and cut to a
bounded length, and the whole message is kept within :data:`MAX_MESSAGE` characters. The admission layer adds the
``lanes: `` prefix, which is why the budget here is 120 minus that prefix.
"""

from __future__ import annotations

import re

MAX_WARNING = 120
"""Kubernetes' recommended maximum length of one admission warning."""
WARNING_PREFIX = "lanes: "
MAX_MESSAGE = MAX_WARNING - len(WARNING_PREFIX)

_SPEC_PREFIX = re.compile(r"^bad [A-Za-z -]+ (?=')")


def quote(value: object, room: int = 24) -> str:
    """``value`` in single quotes, non-printable characters escaped, cut to ``room`` characters."""
    text = value if isinstance(value, str) else repr(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    if len(text) > room:
        text = text[: max(room - 3, 1)] + "..."
    return f"'{text}'"


def clip(text: str, room: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``room`` characters, with ``...`` marking the cut; printable only."""
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    if len(text) <= room:
        return text
    return text[: room - 3] + "..."


def spec_reason(error: Exception) -> str:
    """The ``'value': reason; e.g. example`` part of a parser error.

    The helper's parsers say ``bad warm-up curve '...': ...``; next to the annotation name the noun is redundant,
    and dropping it keeps the example inside the length budget.
    """
    return _SPEC_PREFIX.sub("", str(error), count=1)


def invalid_value(key: str, source: str, error: Exception, fallback: str) -> str:
    """The warning for an annotation value that does not parse: names the annotation, where it was set, the bad
    value, why, an example and what is used instead. Always within :data:`MAX_MESSAGE`."""
    where = "" if source == "pod" else f" ({source})"
    tail = "; using none" if fallback == "none" else f"; using {quote(fallback, 20)}"
    head = f"{key}{where}: "
    reason = spec_reason(error)
    room = MAX_MESSAGE - len(head) - len(tail)
    if len(reason) > room:
        head = f"{key}: "
        room = MAX_MESSAGE - len(head) - len(tail)
    return head + clip(reason, max(room, 10)) + tail if room >= 10 else clip(head + reason)


def add_prefix(message: str) -> str:
    """The admission warning for ``message``: ``lanes: `` prefix, one line, at most :data:`MAX_WARNING`."""
    return WARNING_PREFIX + clip(message, MAX_MESSAGE)
