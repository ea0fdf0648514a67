"""One attempt at one prewarm target: resolve, connect, TLS handshake, request, each phase timed.

The point of a pre-warm is twofold: fail early and legibly when a dependency is unreachable (instead of the app's
first user request finding out), and leave warm state behind (DNS caches, conntrack entries, a server-side TLS
session cache, a dependency's own lazy init triggered by the first request). So an attempt walks the same path
the app's first real connection will, and records where it stopped and why.
"""

from __future__ import annotations

import time

from helper import aio
from helper.http.client import HttpError, encode_request, read_response
from helper.http.dial import dial
from helper.http.dns import ResolveError, resolve
from helper.record import field, record
from helper.specs import Target

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

USER_AGENT_HEADERS = (("User-Agent", "lanes-prewarm"), ("Connection", "close"))


@record(slots=True)
class Attempt:
    """What one attempt found. ``error`` is None on success."""

    resolved: list[str] = field(default_factory=list)
    connected: str | None = None
    connect_ms: float | None = None
    tls_version: str | None = None
    tls_ms: float | None = None
    tls_verified: bool = True
    status: int | None = None
    error: str | None = None
    permanent: bool = False
    """Retrying cannot change the outcome (an untrusted certificate)."""

    @property
    def ok(self) -> bool:
        return self.error is None


def _status_problem(target: Target, status: int) -> str | None:
    if target.expect_status is not None:
        return None if status == target.expect_status else f"HTTP {status}, expected {target.expect_status}"
    return f"HTTP {status} (server error)" if status >= 500 else None


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


async def probe(target: Target, timeout: float, tls: ssl.SSLContext | None) -> Attempt:
    """Run one attempt within ``timeout`` seconds; never raises for network failures."""
    attempt = Attempt()
    phase = "resolve"
    try:
        async with aio.timeout(timeout):
            addresses = await resolve(target.host, target.port or 0, timeout)
            attempt.resolved = [address.host for address in addresses]
            if target.kind == "dns":
                return attempt
            phase = "connect"
            started = time.perf_counter()
            reader, writer, address = await dial(addresses, timeout)
            attempt.connect_ms = _ms(started)
            attempt.connected = address.host
            try:
                if target.url is None:
                    return attempt
                if target.url.tls:
                    phase = "TLS handshake"
                    assert tls is not None, "https targets need a TLS context"
                    started = time.perf_counter()
                    await writer.start_tls(tls, server_hostname=target.host)
                    attempt.tls_ms = _ms(started)
                    ssl_object = writer.get_extra_info("ssl_object")
                    attempt.tls_version = ssl_object.version() if ssl_object is not None else None
                    attempt.tls_verified = bool(tls.check_hostname)
                phase = "response"
                writer.write(encode_request("GET", target.url.path, target.url.host_header, USER_AGENT_HEADERS))
                await writer.drain()
                response = await read_response(reader, method="GET", head_only=True)
                attempt.status = response.status
                attempt.error = _status_problem(target, response.status)
            finally:
                writer.transport.abort()
    except TimeoutError:
        attempt.error = f"timed out after {timeout:g}s during {phase}"
    except ResolveError as error:
        attempt.error = str(error)
    except ConnectionRefusedError:
        attempt.error = "connection refused"
    except HttpError as error:
        attempt.error = str(error)
    except OSError as error:
        attempt.error = _os_error(target, phase, error, attempt)
    return attempt


def _os_error(target: Target, phase: str, error: OSError, attempt: Attempt) -> str:
    if target.kind == "https":
        from helper.http import tls  # loaded only for https targets

        described = tls.describe(error)
        if described is not None:
            attempt.permanent = tls.is_verification_error(error)
            return described
    return f"{phase} failed: {error.strerror or error}"
