"""What pre-warm and self warm-up do for an app's first request: measured in one run, side by side.

The app (bench/first_request_app.py) calls an HTTPS dependency by a DNS name and opens that connection lazily, as
real services do. Four cases, each trial with a cold dependency, a cold DNS cache and a new app process, the real
``lanes-agent`` in front of it and, where the case says so, the real ``lanes-prewarm`` before it:

- ``none``: neither;
- ``prewarm``: ``lanes-helper prewarm https://<dependency>/`` runs (to completion) before the app starts;
- ``selfwarm``: the agent sends ``lanes.io/warmup-requests`` (``GET /api/items x3``) before declaring ready;
- ``both``.

Then one user request goes to the app on a new connection (its *first request*), then a second one (a warm
request, for scale). The app reports which set-up phases the request paid and how long each took.

What is shared outside the app's process is modelled, because it decides what a pre-warm can do:

- a caching DNS server (the node-local DNS cache in front of the cluster DNS) answers the dependency's name after
  ``UPSTREAM_DELAY_S`` on a miss (forwarding upstream) and at once from its cache. It is a hand-written stand-in:
  no DNS server is installed here, and the app and the pre-warm must resolve through the same one, so both run
  with it as their only nameserver;
- the dependency's first request after its start takes ``DEPENDENCY_COLD_S`` longer (a lazy cache behind it).

Everything runs inside a private network + mount namespace the benchmark creates (``unshare``, root): loopback
only, and the namespace's own ``/etc/resolv.conf`` (bind-mounted, never the host's) points at the stand-in. Results:
``first_request.json``, ``first_request.png``, rows in summary.md (ratios against ``none`` in the same run).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import shutil
import socketserver
import ssl
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import REPO, BenchError, free_port, rounded, say, wait_for

NAME = "orders-db.bench.internal"
UPSTREAM_DELAY_S = 0.03
"""A miss in the node-local cache: forwarded to the cluster DNS and beyond (tens of ms is common)."""
DNS_TTL_S = 30
DEPENDENCY_COLD_S = 0.05
"""The dependency's first request after it started (a cold cache, a lazily opened pool on its side)."""
WARMUP_REQUESTS = "GET /api/items x3"
CASES = ("none", "prewarm", "selfwarm", "both")
PHASES = ("tls_context", "dns", "connect", "tls_handshake")
APP = Path(__file__).resolve().parent / "first_request_app.py"


# --- the stand-ins: a caching DNS server and a dependency with a cold start ----------------------------------------


class CachingDns:
    """A UDP DNS server on 127.0.0.1:53 for one zone: A ``127.0.0.1`` for names under ``.bench.internal``,
    NODATA for other types, NXDOMAIN elsewhere; a miss waits ``UPSTREAM_DELAY_S`` once per name and type."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, int], float] = {}
        self.lock = threading.Lock()
        self.misses = 0
        dns = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                with contextlib.suppress(Exception):
                    sock.sendto(dns.answer(data), self.client_address)

        self.server = socketserver.ThreadingUDPServer(("127.0.0.1", 53), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def clear(self) -> None:
        with self.lock:
            self.cache.clear()
            self.misses = 0

    def answer(self, query: bytes) -> bytes:
        labels, offset = [], 12
        while query[offset]:
            length = query[offset]
            labels.append(query[offset + 1 : offset + 1 + length].decode("ascii", "replace").lower())
            offset += 1 + length
        qtype = int.from_bytes(query[offset + 1 : offset + 3], "big")
        question = query[12 : offset + 5]
        name = ".".join(labels)
        known = name.endswith(".bench.internal")
        with self.lock:
            cached = self.cache.get((name, qtype), 0.0) > time.monotonic()
            if not cached:
                self.misses += 1
        if not cached:
            time.sleep(UPSTREAM_DELAY_S)
            with self.lock:
                self.cache[(name, qtype)] = time.monotonic() + DNS_TTL_S
        flags = 0x8180 if known else 0x8183  # response, recursion desired + available; rcode 0 or 3 (NXDOMAIN)
        answers = b""
        if known and qtype == 1:
            answers = b"\xc0\x0c\x00\x01\x00\x01" + DNS_TTL_S.to_bytes(4, "big") + b"\x00\x04" + bytes([127, 0, 0, 1])
        header = query[:2] + flags.to_bytes(2, "big") + b"\x00\x01" + (b"\x00\x01" if answers else b"\x00\x00")
        return header + b"\x00\x00\x00\x00" + question + answers

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Dependency:
    """An HTTPS server (certificate for ``NAME``) whose first request after :meth:`reset` is slow."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.cold = True
        self.lock = threading.Lock()
        dependency = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                with dependency.lock:
                    cold, dependency.cold = dependency.cold, False
                if cold:
                    time.sleep(DEPENDENCY_COLD_S)
                body = b'{"rows": 3}\n'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.cold = True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- one trial --------------------------------------------------------------------------------------------------


def _get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes, float]:
    """One request on a new connection; (status, body, seconds)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        return response.status, body, time.perf_counter() - started
    finally:
        connection.close()


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LANES_")}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def trial(case: str, dns: CachingDns, dependency: Dependency, ca_file: Path, logs: Path) -> dict[str, Any]:
    dns.clear()
    dependency.reset()
    url = f"https://{NAME}:{dependency.port}/orders"
    record: dict[str, Any] = {"case": case}
    if case in ("prewarm", "both"):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "helper", "prewarm", url, "--ca-file", str(ca_file), "--deadline", "10"],
            cwd=REPO, env=_env({}), capture_output=True, text=True, timeout=30, check=False,
        )
        if result.returncode != 0 or not result.stdout.startswith("ok"):
            raise BenchError(f"first_request: prewarm failed: {result.stdout}{result.stderr}")
        record["prewarm_s"] = rounded(time.perf_counter() - started, 3)
    app_port, agent_port = free_port(), free_port()
    with open(logs / f"app-{case}.log", "ab") as log:
        app = subprocess.Popen(
            [sys.executable, str(APP), f"--port={app_port}", f"--dependency={url}", f"--ca-file={ca_file}"],
            stdout=log, stderr=subprocess.STDOUT, env=_env({}),
        )
    agent_env = {
        "LANES_AGENT_PORT": str(agent_port),
        "LANES_APP_PORT": str(app_port),
        "LANES_APP_READY_PATH": "/healthz",
    }
    if case in ("selfwarm", "both"):
        agent_env["LANES_WARMUP_REQUESTS"] = WARMUP_REQUESTS
    with open(logs / f"agent-{case}.log", "ab") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "helper", "agent"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env=_env(agent_env),
        )
    try:
        started = time.perf_counter()
        wait_for(lambda: _get(agent_port, "/ready", 2)[0] == 200, 30, "first_request: the agent's /ready",
                 process=agent, interval=0.01)
        record["to_ready_s"] = rounded(time.perf_counter() - started, 3)
        misses_before = dns.misses
        status, body, first = _get(app_port, "/api/items")
        if status != 200:
            raise BenchError(f"first_request: the app answered {status}: {body[:200]!r}")
        record["first_ms"] = rounded(first * 1000, 3)
        record["opened"] = json.loads(body)["opened"] or {}
        record["dns_cache_hit"] = "dns" in record["opened"] and dns.misses == misses_before
        _, _, warm = _get(app_port, "/api/items")
        record["warm_ms"] = rounded(warm * 1000, 3)
    finally:
        for process in (agent, app):
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    return record


def inside(work: Path, trials: int) -> None:
    """The benchmark proper, run inside the private namespaces: writes ``work/inside.json``."""
    from webhook.controller.certs import pki

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = work / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    ca = pki.make_ca("lanes-bench-first-request", dt.timedelta(days=1))
    leaf = pki.issue(ca, NAME, dt.timedelta(days=1), dns_names=(NAME,))
    ca_file, cert, key = work / "ca.crt", work / "tls.crt", work / "tls.key"
    ca_file.write_bytes(ca.cert_pem)
    cert.write_bytes(leaf.cert_pem)
    key.write_bytes(leaf.key_pem)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    dns, dependency = CachingDns(), Dependency(server_tls)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    records = []
    try:
        for number in range(trials):
            order = CASES[number % len(CASES):] + CASES[: number % len(CASES)]  # rotate: no case always first
            for case in order:
                records.append({"trial": number, **trial(case, dns, dependency, ca_file, logs)})
    finally:
        dns.close()
        dependency.close()
    (work / "inside.json").write_text(json.dumps(records))


# --- the run, the summary and the plot -----------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return rounded(statistics.median(values), 3) if values else None


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    cases: dict[str, Any] = {}
    for case in CASES:
        mine = [r for r in records if r["case"] == case]
        cases[case] = {
            "trials": len(mine),
            "first_ms": _median([r["first_ms"] for r in mine]),
            "first_ms_all": [r["first_ms"] for r in mine],
            "warm_ms": _median([r["warm_ms"] for r in mine]),
            "to_ready_s": _median([r["to_ready_s"] for r in mine]),
            "opened_ms": {phase: _median([r["opened"].get(phase, 0.0) for r in mine]) for phase in PHASES},
            "paid_setup": sum(bool(r["opened"]) for r in mine),
            "dns_cache_hits": sum(bool(r["dns_cache_hit"]) for r in mine),
            "prewarm_s": _median([r["prewarm_s"] for r in mine if "prewarm_s" in r]),
        }
    none = cases["none"]["first_ms"]

    def speedup(case: str) -> float | None:
        first = cases[case]["first_ms"]
        return rounded(none / first, 2) if none and first else None

    return {
        "cases": cases,
        "speedup_vs_none": {case: speedup(case) for case in CASES[1:]},
        "first_over_warm": {
            case: rounded(cases[case]["first_ms"] / cases[case]["warm_ms"], 2)
            if cases[case]["first_ms"] and cases[case]["warm_ms"] else None
            for case in CASES
        },
    }


def plot(summary: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = summary["cases"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    colors = {"tls_context": "tab:purple", "dns": "tab:orange", "connect": "tab:green", "tls_handshake": "tab:red"}
    for index, case in enumerate(CASES):
        bottom = 0.0
        for phase in PHASES:
            value = cases[case]["opened_ms"][phase] or 0.0
            ax.bar(index, value, bottom=bottom, color=colors[phase], label=phase if index == 0 else None)
            bottom += value
        rest = max((cases[case]["first_ms"] or 0.0) - bottom, 0.0)
        ax.bar(index, rest, bottom=bottom, color="tab:gray", label="request (incl. dependency)" if index == 0 else None)
        ax.plot([index - 0.4, index + 0.4], [cases[case]["warm_ms"]] * 2, color="black", linestyle="--",
                label="warm request" if index == 0 else None)
        ax.text(index, bottom + rest, f"{cases[case]['first_ms']:.1f} ms", ha="center", va="bottom")
    ax.set_xticks(range(len(CASES)), ["neither", "pre-warm", "self warm-up", "both"])
    ax.set_ylabel("app's first request, ms (median)")
    ax.set_title("First request to an app calling an HTTPS dependency by DNS name")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def run(quick: bool, work: Path, results: Path) -> dict[str, Any]:
    """Run the trials in fresh namespaces; returns the result (the caller writes the JSON)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        raise BenchError("first_request: needs root, unshare and ip (it runs in its own network + mount namespace)")
    trials = 1 if quick else 5
    work.mkdir(parents=True, exist_ok=True)
    say(f"first_request: {trials} trials x {len(CASES)} cases in a private network + mount namespace")
    command = [
        "unshare", "--net", "--mount", "--propagation", "private",
        sys.executable, "-m", "bench.first_request", "--inside", str(work), "--trials", str(trials),
    ]
    log = work / "inside.log"
    with open(log, "wb") as handle:
        completed = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, timeout=600,
                                   check=False)
    if completed.returncode != 0:
        raise BenchError(f"first_request: the run failed ({completed.returncode}): {log.read_text()[-1500:]}")
    records = json.loads((work / "inside.json").read_text())
    summary = summarize(records)
    png = plot(summary, results / "first_request.png")
    say("first_request: median first request " + ", ".join(
        f"{case} {summary['cases'][case]['first_ms']} ms" for case in CASES))
    return {
        "params": {
            "trials": trials,
            "dns_upstream_delay_s": UPSTREAM_DELAY_S,
            "dependency_cold_s": DEPENDENCY_COLD_S,
            "warmup_requests": WARMUP_REQUESTS,
        },
        "summary": summary,
        "records": records,
        "plot": str(png),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.first_request")
    parser.add_argument("--inside", type=Path, required=True, help="(internal) run the trials here, in namespaces")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args(argv)
    inside(args.inside, args.trials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
