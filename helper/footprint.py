"""Keeping the agent small: it runs once per pod in the whole cluster, so every megabyte is multiplied.

The largest avoidable cost is TLS. ``asyncio`` imports ``ssl`` eagerly, which maps OpenSSL's libssl and libcrypto
and costs about 4.5 MB of resident memory, a quarter of the agent's 20 MB budget. ``asyncio`` is written to work on
Python builds without ``ssl`` (it catches the ImportError), and the agent knows from its configuration, before it
imports ``asyncio``, whether and when it will open a TLS connection. When it never will, marking ``ssl`` as absent
keeps OpenSSL out of the process entirely; when only the going-offline broadcast will, OpenSSL is loaded then.
"""

from __future__ import annotations

import sys

LATE_TLS_PYTHONS = ((3, 11), (3, 12), (3, 13))
"""Versions whose asyncio internals ``load_tls`` knows how to complete (see there)."""


def skip_tls_if_unused(needed_now: bool, needed_later: bool = False) -> bool:
    """Make ``import ssl`` fail for now unless TLS is needed from the start; True when TLS was kept out.

    ``needed_later``: a phase that may never come (the /prestop broadcast to an ``https`` receiver) needs TLS;
    :func:`load_tls` brings it in then, so the pod pays for OpenSSL only during its last seconds. On Python
    versions where that late loading is not known to work, TLS is loaded from the start instead.

    Only effective before ``asyncio`` (or anything else importing ``ssl``) is first imported; if ``ssl`` is already
    loaded it is left alone, since removing a loaded module would only break its users.
    """
    if needed_now or "ssl" in sys.modules:
        return False
    if needed_later and sys.version_info[:2] not in LATE_TLS_PYTHONS:
        return False
    sys.modules["ssl"] = None  # type: ignore[assignment]  # the documented way to make an import fail
    return True


def load_tls() -> None:
    """Load ``ssl`` into a process that started without it, and make asyncio use it.

    asyncio bound ``ssl = None`` into three of its modules when it was imported while ``ssl`` was absent (the
    code path of Python builds without OpenSSL), and derived one tuple from it. Those four names are set here to
    what they would have been had ``ssl`` been importable at the time. tests/helper/test_agent_prestop.py
    broadcasts to an ``https`` receiver through exactly this path.
    """
    if "ssl" not in sys.modules or sys.modules["ssl"] is not None:
        return  # never kept out, or already loaded
    del sys.modules["ssl"]
    import ssl
    from asyncio import base_events, selector_events, sslproto

    for module in (base_events, selector_events, sslproto):
        module.ssl = ssl
    sslproto.SSLAgainErrors = (ssl.SSLWantReadError, ssl.SSLSyscallError)


def resident_bytes() -> int | None:
    """This process's resident set size (VmRSS) in bytes, or None where /proc is not available."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
