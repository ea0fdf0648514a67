"""Measure the lanes-agent's resident memory when it speaks TLS (issue #15.4): an HTTPS app, an https receiver.

Run from the repository root (reported, never asserted):

    python -m tests.bench.measure_tls_rss                                   # plain, https-app, https-notify, floors
    python -m tests.bench.measure_tls_rss --agent VENV/bin/lanes-helper     # an installed agent
    python -m tests.bench.measure_tls_rss --agent VENV/bin/lanes-helper --pythonpath ''   # only what it installed

The scenario is tests.helper.measure_rss's (400 warm-up requests over 8 connections, probes and scrapes, three
concurrent /prestop calls with a slow going-offline receiver), with the app and/or the receiver behind TLS (a
throwaway CA, trusted through ``SSL_CERT_FILE``). Besides VmRSS per phase it reports the idle process's private
(USS) and shared resident memory from /proc/PID/smaps_rollup: OpenSSL's library pages are shared and clean.
By default the agent runs with the checkout on ``PYTHONPATH``, as tests.helper.measure_rss runs it.

Two floors, measured in the same run with the same interpreter, environment and HTTPS app, say what no change to
the agent's own code can go below: ``floor-asyncio`` is a script of a few lines that imports asyncio and makes the
same 400 requests over 8 concurrent TLS connections (asyncio's read buffer capped as the agent caps it);
``floor-no-asyncio`` makes them with blocking sockets, what an agent core on ``selectors`` would start from.
"""

from __future__ import annotations

import argparse
import json
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trustme

from tests.helper.measure_rss import Sampler, _hwm_kb
from tests.helper.procs import HELPER_COMMAND, REPO, Agent, base_env, http_request, rss_kb
from tests.helper.servers import HttpServer, Receiver

AGENT_MODES = ("plain", "https-app", "https-notify")
FLOOR_MODES = ("floor-asyncio", "floor-no-asyncio")
MODES = AGENT_MODES + FLOOR_MODES

FLOOR_ASYNCIO = """
import asyncio, asyncio.sslproto, ssl, sys
asyncio.sslproto.SSLProtocol.max_size = 32 * 1024
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.minimum_version = ssl.TLSVersion.TLSv1_2
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
port = int(sys.argv[1])
async def get():
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    writer.write(b"GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n")
    await reader.read()
    writer.close()
async def main():
    for _ in range(50):
        await asyncio.gather(*(get() for _ in range(8)))
    print("done", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""

FLOOR_NO_ASYNCIO = """
import selectors, socket, ssl, sys, time
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.minimum_version = ssl.TLSVersion.TLSv1_2
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
port = int(sys.argv[1])
for _ in range(400):
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port))) as conn:
        conn.sendall(b"GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n")
        while conn.recv(65536):
            pass
print("done", flush=True)
time.sleep(3600)
"""


def _rollup(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[0].endswith(":"):
                out[parts[0][:-1]] = int(parts[1])
    return out


def measure_floor(mode: str, pythonpath: str | None) -> dict[str, Any]:
    """The floor ``mode``: its script against an HTTPS app; VmRSS and USS/shared once its requests are done."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_tls)
    app = HttpServer(server_tls)
    script = FLOOR_ASYNCIO if mode == "floor-asyncio" else FLOOR_NO_ASYNCIO
    env = base_env({"PYTHONPATH": pythonpath} if pythonpath is not None else None)
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(app.port)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "done":
            raise RuntimeError(f"{mode}: the floor script failed (exit {process.wait(5)})")
        time.sleep(0.5)
        idle = rss_kb(process.pid)
        rollup = _rollup(process.pid)
    finally:
        process.kill()
        process.wait(5)
        app.close()
    mib = 1024
    return {
        "mode": mode,
        "idle_mib": round(idle / mib, 2),
        "idle_private_mib": round((rollup["Private_Clean"] + rollup["Private_Dirty"]) / mib, 2),
        "idle_shared_mib": round((rollup["Shared_Clean"] + rollup["Shared_Dirty"]) / mib, 2),
    }


def measure(mode: str, command: list[str], pythonpath: str | None) -> dict[str, Any]:
    ca = trustme.CA()
    work = Path(tempfile.mkdtemp(prefix="lanes-tls-rss-"))
    ca_file = work / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_tls)
    app = HttpServer(server_tls if mode == "https-app" else None)
    with Receiver(delay=5, tls=server_tls if mode == "https-notify" else None) as receiver:
        env = {
            "LANES_APP_PORT": str(app.port),
            "LANES_APP_READY_PATH": "/",
            "LANES_WARMUP_REQUESTS": "GET / x400 c8",
            "LANES_WARMUP": "60",
            "LANES_WARMUP_CURVE": "k=2",
            "LANES_DRAIN": "1",
            "LANES_OFFLINE_NOTIFY": receiver.url,
            "SSL_CERT_FILE": str(ca_file),
            **({"LANES_APP_READY_SCHEME": "HTTPS"} if mode == "https-app" else {}),
            **({"PYTHONPATH": pythonpath} if pythonpath is not None else {}),
        }
        agent = Agent.start(work, env, command=command)
        sampler = Sampler(agent.process.pid)
        try:
            agent.wait_ready(timeout=60)
            startup = sampler.take()
            for _ in range(20):
                for path in ("/ready", "/healthz", "/metrics", "/status"):
                    agent.get(path)
            time.sleep(2.5)  # at least one check of the app
            idle = rss_kb(agent.process.pid)
            rollup = _rollup(agent.process.pid)
            sampler.take()
            warmup_ok = agent.json("/status")["warmup"]["requests"]["ok"]
            callers = [
                threading.Thread(target=http_request, args=(agent.port, "/prestop"), kwargs={"timeout": 30})
                for _ in range(3)
            ]
            for caller in callers:
                caller.start()
            for caller in callers:
                caller.join()
            drain = sampler.take()
            hwm = _hwm_kb(agent.process.pid)
            agent.stop()
        finally:
            sampler.stop()
            agent.kill()
            app.close()
            shutil.rmtree(work, ignore_errors=True)  # the CA file and the agent's log
    mib = 1024
    return {
        "mode": mode,
        "startup_peak_mib": round(startup / mib, 2),
        "idle_mib": round(idle / mib, 2),
        "drain_peak_mib": round(drain / mib, 2),
        "hwm_mib": round(hwm / mib, 2),
        "idle_private_mib": round((rollup["Private_Clean"] + rollup["Private_Dirty"]) / mib, 2),
        "idle_shared_mib": round((rollup["Shared_Clean"] + rollup["Shared_Dirty"]) / mib, 2),
        "warmup_ok": warmup_ok,
        "receiver_calls": len(receiver.received),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", help="lanes-helper executable (default: python -m helper from this checkout)")
    parser.add_argument("--pythonpath", help="PYTHONPATH for the agent (default: the checkout, as measure_rss)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"--modes: unknown {', '.join(unknown)}; choose from {', '.join(MODES)}")
    command = [args.agent] if args.agent else list(HELPER_COMMAND)
    for mode in modes:
        if mode in FLOOR_MODES:
            result = measure_floor(mode, args.pythonpath)
        else:
            result = measure(mode, command, args.pythonpath)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
