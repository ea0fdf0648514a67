"""Keeping the agent small: it runs once per pod in the whole cluster, so every megabyte is multiplied.

What the agent leaves out, and what each saves (measured on this machine, docs/performance.md "Agent with TLS"):

- asyncio: the helper runs on helper.aio, asyncio's semantics without its imports (``inspect``, ``ast``, ``dis``,
  ``logging``, ``concurrent.futures``, ``subprocess``, ``typing``) and without its TLS protocol's buffers: about
  3.5 MiB with TLS loaded;
- ``dataclasses`` and ``typing`` at run time (1.9 MiB): helper.record's classes, annotations only for the type
  checker;
- OpenSSL until a TLS connection is opened: nothing imports ``ssl`` but helper.http.tls (imported by the code
  that dials an ``https`` app or receiver) and :meth:`helper.aio.streams.Transport.start_tls`. libssl and libcrypto
  cost about 4.5 MiB once mapped and used; an agent for a plain-HTTP app with plain receivers never maps them,
  and one with only ``https`` receivers maps them during its last seconds;
- argparse and gettext: the agent's own command line is recognised without them (helper/cli.py).

tests/helper/test_agent_imports.py checks the modules the running agent imported.
"""

from __future__ import annotations


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
