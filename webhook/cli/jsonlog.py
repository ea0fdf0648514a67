"""Structured logs: one JSON object per line.

Cluster log pipelines (Loki, Cloud Logging, Elastic) index JSON fields without regexes, so every record the
webhook process emits, including uvicorn's own, goes through :class:`JsonFormatter`. Context travels as
``logging`` extras (``log.info("admission", extra={"uid": ..., "outcome": ...})``); whatever extras a record
carries become top-level keys. Keys that ``logging`` reserves (``name``, ``msg``, ...) go in
``extra={"fields": {...}}``, which is merged the same way.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is emitted.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured duplicate of msg
}

#: Loggers uvicorn writes to; they are re-pointed at the JSON handler.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    """Formats a record as a single-line JSON object: ts, level, logger, msg, then the record's extras.

    It runs once per admission request, so it avoids the generic machinery: the timestamp's seconds part is
    cached, and extras are found with one set difference.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _timestamp(self, created: float) -> str:
        """RFC 3339 UTC with milliseconds: sortable, and what every log backend parses."""
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        attrs = record.__dict__
        for key in attrs.keys() - _STANDARD_ATTRS:
            value = attrs[key]
            if key == "fields" and isinstance(value, dict):
                for field, field_value in value.items():
                    out.setdefault(field, field_value)
            elif not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: an odd extra (a Path, an exception) must never make a log call raise.
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str = "info", *, access_log: bool = False, stream: TextIO | None = None) -> None:
    """Route the root logger and uvicorn's loggers through one JSON handler.

    uvicorn must then be started with ``log_config=None`` so it keeps these settings. The access log is off by
    default: every admission already produces one richer line (uid, namespace, outcome, duration).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    logging.getLogger("uvicorn.access").disabled = not access_log
    # The JSON lines carry none of these; skipping them saves a stack walk and lookups per record (see the
    # logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # The kubernetes client logs every retry of urllib3 at WARNING with a traceback; our watch loop already
    # reports failures once, with context.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
