"""Structured logs: one JSON object per line on stdout (``ts``, ``level``, ``msg``, then fields).

Hand-rolled instead of ``logging`` because the agent needs nothing of it but this, and every module it does not
import is memory saved in every pod. Writing never raises: a closed or full stdout must not take the agent down
in the middle of a drain.
"""

from __future__ import annotations

import json
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

_stream: TextIO | None = None


def use_stream(stream: TextIO | None) -> None:
    """Send log lines to ``stream`` (``None``: back to ``sys.stdout``). For tests and embedding."""
    global _stream
    _stream = stream


def timestamp(epoch: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2024-05-01T12:00:00.123Z``."""
    epoch = time.time() if epoch is None else epoch
    whole = int(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((epoch - whole) * 1000):03d}Z"


def log(level: str, msg: str, **fields: Any) -> None:
    """Write one log line. Field values that are not JSON types are written with ``str()``."""
    record: dict[str, Any] = {"ts": timestamp(), "level": level, "msg": msg}
    record.update(fields)
    try:
        line = json.dumps(record, default=str, separators=(",", ":"), ensure_ascii=False)
        stream = _stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):  # closed or broken stdout: logging is best effort
        pass


def info(msg: str, **fields: Any) -> None:
    log("info", msg, **fields)


def warning(msg: str, **fields: Any) -> None:
    log("warning", msg, **fields)


def error(msg: str, **fields: Any) -> None:
    log("error", msg, **fields)
