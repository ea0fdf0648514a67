"""What the running agent imports: none of the modules it was built to leave out (helper/footprint.py).

The installed entry point (``lanes-helper agent``, as the injected sidecar runs it) goes through a whole life with
``PYTHONPROFILEIMPORTTIME=1``: start-up next to a plain-HTTP app, self warm-up, probes, a ``/prestop`` drain that
broadcasts to a plain receiver, SIGTERM. Every module imported at any point is on stderr, nested by indentation,
so a failure names the chain that brought a forbidden module in.

Each left-out module is memory in every pod (measured on this machine, docs/performance.md "Agent with TLS"):
asyncio ~3.5 MiB with TLS, dataclasses (with inspect, ast, dis, tokenize) 1.3 MiB, typing 0.6 MiB, ssl (OpenSSL)
4.5 MiB when nothing speaks TLS, threading 0.2 MiB, argparse with gettext 0.5 MiB.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.helper.procs import Agent, http_request
from tests.helper.servers import HttpServer, Receiver

INSTALLED = (str(Path(sys.executable).parent / "lanes-helper"),)
FORBIDDEN = ("asyncio", "dataclasses", "typing", "inspect", "ssl", "threading", "argparse", "logging")
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$")


def _imports(log: str) -> list[tuple[int, str]]:
    """(depth, module) for each import, in the order the profile prints them (children before parents)."""
    found = []
    for line in log.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            found.append((len(match.group(1)) // 2, match.group(2)))
    return found


def _chain(imports: list[tuple[int, str]], index: int) -> str:
    """The module at ``index`` and the parents that imported it (the next shallower lines below it)."""
    depth, name = imports[index]
    chain = [name]
    for parent_depth, parent in imports[index + 1 :]:
        if parent_depth < depth:
            chain.append(parent)
            depth = parent_depth
    return " <- ".join(chain)


def test_the_import_chain_is_read_from_the_profile() -> None:
    log = (
        "import time:       100 |        100 |     inspect\n"
        "import time:       200 |        300 |   dataclasses\n"
        '{"msg": "a JSON log line in between"}\n'
        "import time:       300 |        600 | helper.config\n"
    )
    imports = _imports(log)
    assert imports == [(2, "inspect"), (1, "dataclasses"), (0, "helper.config")]
    assert _chain(imports, 0) == "inspect <- dataclasses <- helper.config"


def test_a_whole_agent_life_imports_none_of_the_left_out_modules(tmp_path: Path) -> None:
    with HttpServer() as app, Receiver() as receiver:
        agent = Agent.start(
            tmp_path,
            {
                "PYTHONPROFILEIMPORTTIME": "1",
                "LANES_APP_PORT": str(app.port),
                "LANES_APP_READY_PATH": "/",
                "LANES_WARMUP_REQUESTS": "GET / x40 c4",
                "LANES_OFFLINE_NOTIFY": receiver.url,
                "LANES_DRAIN": "0.5",
            },
            command=INSTALLED,
        )
        try:
            agent.wait_ready(timeout=20)
            status, _, _ = http_request(agent.port, "/prestop", timeout=30)
            assert status == 200
            assert receiver.received, "the broadcast reached the receiver"
        finally:
            assert agent.stop() == 0
    imports = _imports(agent.log_text())
    assert any(name == "helper.aio.loop" for _, name in imports), "the profile was captured"
    offenders = [_chain(imports, i) for i, (_, name) in enumerate(imports) if name.split(".")[0] in FORBIDDEN]
    assert offenders == [], "imported by the agent:\n" + "\n".join(offenders)
