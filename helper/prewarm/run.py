"""The ``lanes-prewarm`` init container: check every dependency in parallel, retry until one overall deadline.

Each target is attempted with a per-attempt timeout and retried with exponential backoff and jitter until it
succeeds or the overall deadline passes; all targets run at once, so the container takes as long as the slowest
target, never the sum. One line per target is printed as soon as that target is settled.

Policies: ``warn`` (default) always exits 0 and lets the pod start, reporting what was unreachable; ``require``
exits 1 when any target is still unreachable at the deadline, so the kubelet restarts the init container (with its
own backoff) and the app never starts against a missing dependency.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from helper.backoff import Backoff
from helper.config import PrewarmConfig
from helper.env import ConfigError
from helper.prewarm.probes import Attempt, probe
from helper.specs import Target

if TYPE_CHECKING:
    import ssl

EXIT_OK = 0
EXIT_UNREACHABLE = 1
MIN_ATTEMPT = 0.05
"""Seconds: an attempt with less time left than this cannot succeed, so the target is settled instead."""


@dataclass(slots=True)
class Outcome:
    target: Target
    attempts: int
    last: Attempt
    seconds: float

    @property
    def ok(self) -> bool:
        return self.last.ok


async def settle(target: Target, config: PrewarmConfig, tls: ssl.SSLContext | None, deadline: float) -> Outcome:
    """Attempt ``target`` until it succeeds, fails permanently, or ``deadline`` (loop time) passes."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    backoff = Backoff(first=0.25, cap=5.0)
    attempts = 0
    while True:
        remaining = deadline - loop.time()
        attempts += 1
        last = await probe(target, min(config.timeout, max(remaining, MIN_ATTEMPT)), tls)
        if last.ok or last.permanent:
            break
        pause = backoff.next_delay()
        if deadline - loop.time() - pause < MIN_ATTEMPT:
            break
        await asyncio.sleep(pause)
    return Outcome(target, attempts, last, loop.time() - started)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def format_text(outcome: Outcome) -> str:
    """``ok   tcp://db:5432 resolved=10.0.0.7 connect=0.4ms attempts=1 time=2ms`` (logfmt-style fields)."""
    last = outcome.last
    parts = ["ok  " if outcome.ok else "FAIL", outcome.target.raw]
    parts.append("resolved=" + (",".join(last.resolved[:4]) if last.resolved else "-"))
    if last.connected and len(last.resolved) > 1:
        parts.append(f"connected={last.connected}")
    if last.connect_ms is not None:
        parts.append(f"connect={last.connect_ms}ms")
    if last.tls_version is not None:
        parts.append(f"tls={last.tls_version}" + ("" if last.tls_verified else "/unverified"))
    if last.tls_ms is not None:
        parts.append(f"handshake={last.tls_ms}ms")
    if last.status is not None:
        parts.append(f"status={last.status}")
    parts.append(f"attempts={outcome.attempts}")
    parts.append(f"time={_duration(outcome.seconds)}")
    if last.error is not None:
        parts.append(f"error={json.dumps(last.error)}")
    return " ".join(parts)


def format_json(outcome: Outcome) -> str:
    last = outcome.last
    return json.dumps(
        {
            "target": outcome.target.raw,
            "ok": outcome.ok,
            "resolved": last.resolved,
            "connected": last.connected,
            "connect_ms": last.connect_ms,
            "tls": last.tls_version,
            "tls_verified": last.tls_verified if last.tls_version else None,
            "handshake_ms": last.tls_ms,
            "status": last.status,
            "attempts": outcome.attempts,
            "seconds": round(outcome.seconds, 3),
            "error": last.error,
        },
        separators=(",", ":"),
    )


def _tls_context(config: PrewarmConfig) -> ssl.SSLContext | None:
    if not config.needs_tls:
        return None
    from helper.http import tls

    try:
        return tls.unverified_context() if config.insecure else tls.verified_context(config.ca_file)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{config.ca_file}: {tls.load_error(error)}") from None


async def _run(config: PrewarmConfig, tls: ssl.SSLContext | None, out: TextIO) -> list[Outcome]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.deadline
    render = format_json if config.output == "json" else format_text

    async def one(target: Target) -> Outcome:
        outcome = await settle(target, config, tls, deadline)
        out.write(render(outcome) + "\n")
        out.flush()
        return outcome

    return list(await asyncio.gather(*(one(target) for target in config.targets)))


def run(config: PrewarmConfig, out: TextIO | None = None) -> int:
    """Run the prewarm and return the exit status (0, or 1 under ``require`` with unreachable targets)."""
    out = out or sys.stdout
    tls = _tls_context(config)  # a bad CA file is a configuration error: fail before any attempt
    started = time.monotonic()
    outcomes = asyncio.run(_run(config, tls, out))
    reachable = sum(outcome.ok for outcome in outcomes)
    failing = config.policy == "require" and reachable < len(outcomes)
    verdict = (
        "all reachable"
        if reachable == len(outcomes)
        else ("failing the init container" if failing else "starting anyway")
    )
    if config.insecure and config.needs_tls:
        verdict += "; TLS certificates NOT verified"
    summary = (
        f"prewarm: {reachable}/{len(outcomes)} targets reachable in {_duration(time.monotonic() - started)}"
        f" (policy={config.policy}: {verdict})"
    )
    if config.output == "json":
        summary = json.dumps({"summary": summary, "reachable": reachable, "targets": len(outcomes)})
    out.write(summary + "\n")
    out.flush()
    return EXIT_UNREACHABLE if failing else EXIT_OK
