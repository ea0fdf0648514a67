"""Name resolution that a hung resolver cannot stall.

``getaddrinfo`` blocks and cannot be cancelled. asyncio runs it in its default thread pool, whose threads the
interpreter joins at exit, so one lookup stuck on an unreachable nameserver would keep an init container alive
past its deadline (and a sidecar past SIGTERM). Here each lookup runs in a daemon thread instead: the caller's
timeout really ends the wait, and an abandoned lookup never delays exit.
"""

from __future__ import annotations

import _thread
import contextlib
import socket

from helper import aio
from helper.record import record


@record(frozen=True, slots=True)
class Address:
    family: int
    host: str
    port: int

    def __str__(self) -> str:
        return self.host


class ResolveError(OSError):
    """The name did not resolve; the message says which name and why."""


def numeric_family(host: str) -> int | None:
    """The address family of a literal IP address, or None for a name (no lookup needed for literals)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


def _lookup(host: str, port: int) -> list[Address]:
    seen: dict[str, Address] = {}
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        seen.setdefault(address, Address(family, address, port))
    return list(seen.values())


async def resolve(host: str, port: int, timeout: float) -> list[Address]:
    """All stream addresses of ``host`` in resolver order, deduplicated; raises ResolveError or TimeoutError."""
    family = numeric_family(host)
    if family is not None:
        return [Address(family, host, port)]
    loop = aio.get_running_loop()
    future: aio.Future[list[Address]] = loop.create_future()

    def settle(result: list[Address] | None, error: BaseException | None) -> None:
        if future.done():  # the caller gave up (timeout, cancellation)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or [])

    def work() -> None:
        try:
            result, error = _lookup(host, port), None
        except socket.gaierror as exc:
            result, error = None, ResolveError(f"cannot resolve {host}: {exc.strerror or exc}")
        except (OSError, UnicodeError) as exc:
            result, error = None, ResolveError(f"cannot resolve {host}: {exc}")
        # RuntimeError: the loop closed while we were blocked, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    # _thread, not threading: a thread started here is never joined at exit (a daemon thread), and the agent
    # does not pay ~0.2 MiB for the threading module.
    _thread.start_new_thread(work, ())
    addresses = await aio.wait_for(future, timeout)
    if not addresses:
        raise ResolveError(f"cannot resolve {host}: no addresses")
    return addresses
