"""The going-offline broadcast: tell every ``LANES_OFFLINE_NOTIFY`` receiver that this pod is leaving.

Registries and EndpointSlices propagate with a delay; a consumer that is told directly can stop sending new requests
to this pod at once (Dubbo's and Spring Cloud's "active offline notice"). The message is a JSON POST:

    {"event": "going-offline", "pod": ..., "namespace": ..., "ip": ..., "lane": ..., "app": ...,
     "reason": "prestop", "drain_seconds": 20.0, "drain_ends_at": 1714567890.123, "ts": "..."}

All receivers are notified in parallel, each with a few bounded retries; the broadcast gets the drain's time and
no more: whatever is still pending when the drain ends is cut off, because the broadcast must never delay the
pod's shutdown.
"""

from __future__ import annotations

import json
import time

from helper import aio, jsonlog
from helper.backoff import Backoff
from helper.config import Identity
from helper.http.client import fetch
from helper.record import as_dict, record
from helper.specs import HttpUrl

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

MAX_ATTEMPTS = 3
ATTEMPT_TIMEOUT = 2.0
HEADERS = (("Content-Type", "application/json"), ("User-Agent", "lanes-agent/offline-notify"))


@record(slots=True)
class NotifyResult:
    url: str
    result: str = "pending"
    """ok | failed | cut_off (still being tried when the drain ended)."""
    status: int | None = None
    attempts: int = 0
    error: str | None = None
    ms: float | None = None

    def as_dict(self) -> dict[str, object]:
        return as_dict(self)


def payload(identity: Identity, *, reason: str, drain: float, drain_ends_at: float) -> bytes:
    return json.dumps(
        {
            "event": "going-offline",
            "pod": identity.pod,
            "namespace": identity.namespace,
            "ip": identity.ip,
            "lane": identity.lane,
            "app": identity.app,
            "reason": reason,
            "drain_seconds": drain,
            "drain_ends_at": round(drain_ends_at, 3),
            "ts": jsonlog.timestamp(),
        },
        separators=(",", ":"),
    ).encode("utf-8")


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


async def _notify_one(
    url: HttpUrl, body: bytes, result: NotifyResult, deadline: float, tls: ssl.SSLContext | None
) -> None:
    loop = aio.get_running_loop()
    backoff = Backoff(first=0.2, cap=1.0)
    started = time.perf_counter()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        result.attempts = attempt
        timeout = min(ATTEMPT_TIMEOUT, remaining)
        try:
            response = await fetch(
                url.host,
                url.port,
                "POST",
                url.path,
                timeout=timeout,
                host_header=url.host_header,
                tls=tls if url.tls else None,
                headers=HEADERS,
                body=body,
            )
        except TimeoutError:
            if timeout < ATTEMPT_TIMEOUT:
                # The drain's end, not the receiver, ended this attempt: it was still being tried, so it stays
                # pending and is reported cut_off (deciding here would race the drain's own timer).
                result.error = "the drain ended first"
                return
            result.error = f"no answer within {timeout:.1f}s"
        except OSError as error:
            result.error = error.strerror or str(error) or type(error).__name__
        else:
            result.status = response.status
            if response.status < 300:
                result.result, result.error = "ok", None
                result.ms = round((time.perf_counter() - started) * 1000, 1)
                return
            result.error = f"HTTP {response.status}"
            if not _retryable(response.status):
                break
        pause = backoff.next_delay()
        if attempt == MAX_ATTEMPTS or loop.time() + pause >= deadline:
            break
        await aio.sleep(pause)
    result.result = "failed"
    result.ms = round((time.perf_counter() - started) * 1000, 1)


def _tls_for(urls: tuple[HttpUrl, ...]) -> ssl.SSLContext | None:
    if not any(url.tls for url in urls):
        return None

    from helper.http import tls

    return tls.verified_context()


async def broadcast(urls: tuple[HttpUrl, ...], body: bytes, results: list[NotifyResult], deadline: float) -> None:
    """Notify all ``urls`` in parallel, recording into ``results`` (same order) as attempts complete.

    Returns when every receiver is settled; the caller cancels it at the end of the drain and reads ``results``
    as they stand then.
    """
    tls = _tls_for(urls)
    await aio.gather(
        *(_notify_one(url, body, result, deadline, tls) for url, result in zip(urls, results, strict=True))
    )
