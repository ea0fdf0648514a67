"""Opening TCP connections: to the first address of a resolved name that accepts.

Kept apart from resolution so callers can time the two phases separately (the prewarm report shows both) and so a
name with several addresses (dual stack, several A records) is not declared unreachable because its first address
is: each address is tried in the resolver's order until one accepts or the time is up.
"""

from __future__ import annotations

from helper import aio
from helper.http.dns import Address, resolve

STREAM_LIMIT = 65536
"""Longest line a client stream may buffer (response status and header lines)."""


async def dial(addresses: list[Address], timeout: float) -> tuple[aio.StreamReader, aio.StreamWriter, Address]:
    """Connect to the first address that accepts within ``timeout`` (shared by all attempts).

    Raises the last address's error (ConnectionRefusedError, OSError) or TimeoutError.
    """
    if not addresses:
        raise OSError("no address to connect to")
    loop = aio.get_running_loop()
    deadline = loop.time() + timeout
    last_error: BaseException | None = None
    for index, address in enumerate(addresses):
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        # Share the time among the addresses left, so one black-holed address cannot use it all.
        budget = remaining / (len(addresses) - index)
        try:
            async with aio.timeout(budget):
                reader, writer = await aio.open_connection(address.host, address.port, limit=STREAM_LIMIT)
        except (TimeoutError, OSError) as error:
            last_error = error
            continue
        return reader, writer, address
    if isinstance(last_error, OSError) and not isinstance(last_error, TimeoutError):
        raise last_error
    raise TimeoutError(f"connect timed out after {timeout:g}s")


async def dial_host(host: str, port: int, timeout: float) -> tuple[aio.StreamReader, aio.StreamWriter, Address]:
    """Resolve ``host`` and connect, both within ``timeout``."""
    loop = aio.get_running_loop()
    deadline = loop.time() + timeout
    addresses = await resolve(host, port, timeout)
    return await dial(addresses, max(deadline - loop.time(), 0.001))
