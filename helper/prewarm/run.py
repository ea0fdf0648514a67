"""The ``lanes-prewarm`` init container: check every dependency in parallel, retry until one overall deadline.

Each target is attempted with a per-attempt timeout and retried with exponential backoff and jitter until it
succeeds or the overall deadline passes; all targets run at once, so the container takes as long as the slowest
target, never the sum. One line per target is printed as soon as that target is settled.

Policies: ``warn`` (default) always exits 0 and lets the pod start, reporting what was unreachable; ``require``
keeps the app from starting against a missing dependency:

- on pods the kubelet restarts init containers for (``restartPolicy`` Always, the default, or OnFailure) it exits 1
  when a target is still unreachable at the deadline, and the kubelet runs it again with its own backoff;
- on ``restartPolicy: Never`` pods (Jobs, bare pods) nothing would run it again (the pod would fail at the first
  missed deadline), so it retries in-process instead: each missed deadline is reported like a restart would be,
  the unreachable targets are tried on with the same backoff, and it exits 0 once all are reachable. The pod's
  ``activeDeadlineSeconds`` (a Job's) bounds it, as the kubelet's restarts are bounded for other pods only by the
  rollout's progress deadline. A failure retrying cannot fix (an untrusted certificate) still exits 1 at once.
"""

from __future__ import annotations

import json
import sys
import time

from helper import aio
from helper.backoff import Backoff
from helper.config import PrewarmConfig
from helper.env import ConfigError
from helper.prewarm.probes import Attempt, probe
from helper.record import record
from helper.specs import Target

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import TextIO

EXIT_OK = 0
EXIT_UNREACHABLE = 1
MIN_ATTEMPT = 0.05
"""Seconds: an attempt with less time left than this cannot succeed, so the target is settled instead."""


@record(slots=True)
class Outcome:
    target: Target
    attempts: int
    last: Attempt
    seconds: float

    @property
    def ok(self) -> bool:
        return self.last.ok


async def settle(
    target: Target,
    config: PrewarmConfig,
    tls: ssl.SSLContext | None,
    deadline: float,
    backoff: Backoff | None = None,
    *,
    wait_out: bool = False,
) -> Outcome:
    """Attempt ``target`` until it succeeds, fails permanently, or ``deadline`` (loop time) passes; ``backoff``
    continues a previous round's delays. ``wait_out``: when the next attempt no longer fits, sleep until the
    deadline instead of returning early (rounds that follow one another keep the backoff's pace)."""
    loop = aio.get_running_loop()
    started = loop.time()
    backoff = backoff or Backoff(first=0.25, cap=5.0)
    attempts = 0
    while True:
        remaining = deadline - loop.time()
        attempts += 1
        last = await probe(target, min(config.timeout, max(remaining, MIN_ATTEMPT)), tls)
        if last.ok or last.permanent:
            break
        pause = backoff.next_delay()
        if deadline - loop.time() - pause < MIN_ATTEMPT:
            if wait_out:
                await aio.sleep(max(deadline - loop.time(), 0.0))
            break
        await aio.sleep(pause)
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


def _summary(config: PrewarmConfig, reachable: int, total: int, seconds: float, verdict: str) -> str:
    if config.insecure and config.needs_tls:
        verdict += "; TLS certificates NOT verified"
    summary = (
        f"prewarm: {reachable}/{total} targets reachable in {_duration(seconds)}"
        f" (policy={config.policy}: {verdict})"
    )
    if config.output == "json":
        summary = json.dumps({"summary": summary, "reachable": reachable, "targets": total})
    return summary


async def _run(config: PrewarmConfig, tls: ssl.SSLContext | None, out: TextIO) -> list[Outcome]:
    """Every target settled once by one deadline; on a never-restarted pod under ``require``, round after round
    for the unreachable ones until all are reachable (or one fails in a way retrying cannot fix)."""
    loop = aio.get_running_loop()
    started = loop.time()
    render = format_json if config.output == "json" else format_text
    backoffs = [Backoff(first=0.25, cap=5.0) for _ in config.targets]
    retry_in_process = config.policy == "require" and not config.restarts

    async def one(index: int, deadline: float, before: Outcome | None = None) -> Outcome:
        """Settle one target by ``deadline`` and print its line (counting the rounds ``before`` it)."""
        outcome = await settle(config.targets[index], config, tls, deadline, backoffs[index], wait_out=retry_in_process)
        if before is not None:
            outcome.attempts += before.attempts
            outcome.seconds = loop.time() - started
        out.write(render(outcome) + "\n")
        out.flush()
        return outcome

    everyone = range(len(config.targets))
    outcomes = list(await aio.gather(*(one(index, started + config.deadline) for index in everyone)))
    while retry_in_process:
        pending = [index for index in everyone if not outcomes[index].ok]
        if not pending or any(outcomes[index].last.permanent for index in pending):
            break
        verdict = (
            "restartPolicy Never: no kubelet restart will come, retrying in-process"
            f" for {len(pending)} target{'s' if len(pending) > 1 else ''}"
        )
        reachable = len(outcomes) - len(pending)
        out.write(_summary(config, reachable, len(outcomes), loop.time() - started, verdict) + "\n")
        out.flush()
        deadline = loop.time() + config.deadline
        settled = await aio.gather(*(one(index, deadline, outcomes[index]) for index in pending))
        for index, outcome in zip(pending, settled, strict=True):
            outcomes[index] = outcome
    return outcomes


def run(config: PrewarmConfig, out: TextIO | None = None) -> int:
    """Run the prewarm and return the exit status (0, or 1 under ``require`` with unreachable targets)."""
    out = out or sys.stdout
    tls = _tls_context(config)  # a bad CA file is a configuration error: fail before any attempt
    started = time.monotonic()
    outcomes = aio.run(_run(config, tls, out))
    reachable = sum(outcome.ok for outcome in outcomes)
    failing = config.policy == "require" and reachable < len(outcomes)
    verdict = (
        "all reachable"
        if reachable == len(outcomes)
        else ("failing the init container" if failing else "starting anyway")
    )
    out.write(_summary(config, reachable, len(outcomes), time.monotonic() - started, verdict) + "\n")
    out.flush()
    return EXIT_UNREACHABLE if failing else EXIT_OK
