"""Admission throughput and latency: Lanes against a Python peer, a compiled yardstick and the floor.

Servers (one at a time, each pinned to CPU 1 with ``taskset -c 1``; the load generators pinned to CPU 0):

- ``lanes``: ``lanes-webhook serve --no-owner-cache`` (the product, default log level: one JSON line per admission);
- ``kopf``: kopf's admission ``WebhookServer`` (aiohttp) with a ``@kopf.on.mutate`` handler calling the same
  ``webhook.injection.admit.admit_pod`` (bench/peers/kopf_peer.py);
- ``go``: a controller-runtime ``webhook.Server`` + ``admission.Handler`` doing a faithful subset of the mutation
  (bench/go-webhook/, built with ``go build``);
- ``floor``: Lanes' web stack (uvicorn, same TLS context and settings, ``POST /mutate`` answered by a raw ASGI
  callable in front of the FastAPI app, as Lanes does) answering ``allowed`` with no work beyond parsing the review
  for its uid (bench/peers/floor.py ``--stack lean``): what Lanes is held against;
- the web-stack comparisons, in the same run: ``lanes_h11`` is the same Lanes app on uvicorn's pure-Python h11
  parser and the asyncio loop instead of httptools and uvloop (bench/peers/lanes_variant.py), ``floor_h11`` the
  floor on that stack; ``lanes_fastapi`` is the same Lanes app with its admission paths
  routed through FastAPI's middleware and router (bench/peers/lanes_variant.py) and ``floor_fastapi`` the floor
  routed the same way (``--stack fastapi``, the floor of earlier runs).

Same bodies (bench/bodies.py: small ~1.4 KB pod, large ~20 KB pod), same certificate (ECDSA P-256, TLS 1.2+,
HTTP/1.1), keep-alive, same concurrency (16 connections). Per server and body:

1. saturation: ``wrk -t1 -c16 --latency`` with bench/wrk/admission.lua (closed loop: throughput at saturation);
2. fixed rates at 25 % and 50 % of Lanes' saturation throughput for that body: bench/loadgen (open loop, wrk2-like,
   latency from the intended send time, so queueing behind a stall is counted). Debian's wrk has no fixed-rate mode;
3. CPU per request = (utime + stime of the server over the run, from /proc/PID/stat) / requests answered;
   RSS = VmRSS after the runs, peak = VmHWM.

Every response is checked (HTTP 200, ``allowed``, a patch where Lanes patches), and the mutated pods of every server
are compared with Lanes' (kopf: identical; go: identical up to the ``lanes.io/status`` text).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import bodies, instructions
from bench.common import (
    BENCH_DIR,
    LOAD_CORE,
    SERVER_CORE,
    VENV_BIN,
    BenchError,
    Proc,
    Tls,
    cpu_seconds,
    cpu_ticks,
    free_port,
    go_build,
    kill_quietly,
    loadgen_binary,
    memory_kb,
    pinned,
    require,
    require_module,
    rounded,
    say,
    start,
    steal_percent,
    wait_for,
)

CONNECTIONS = 16
RATE_FRACTIONS = (0.25, 0.5)
BODY_NAMES = ("small", "large")


@dataclass(frozen=True)
class Params:
    warmup_s: int
    saturation_s: int
    rate_s: float

    @staticmethod
    def for_mode(quick: bool) -> Params:
        return Params(warmup_s=0, saturation_s=1, rate_s=2.0) if quick else Params(2, 10, 10.0)


@dataclass(frozen=True)
class ServerSpec:
    name: str
    title: str
    path: str
    command: Callable[[int, Tls], list[str]]


def _python(module: str, *extra: str) -> Callable[[int, Tls], list[str]]:
    def command(port: int, tls: Tls) -> list[str]:
        return [str(VENV_BIN / "python"), "-m", module, "--cert", str(tls.cert), "--key", str(tls.key),
                "--host", "127.0.0.1", "--port", str(port), *extra]
    return command


def _lanes(port: int, tls: Tls) -> list[str]:
    return [str(VENV_BIN / "lanes-webhook"), "serve", "--cert", str(tls.cert), "--key", str(tls.key),
            "--host", "127.0.0.1", "--port", str(port), "--no-owner-cache", "--shutdown-delay", "0"]


def _go(port: int, tls: Tls) -> list[str]:
    binary = go_build(BENCH_DIR / "go-webhook", ".", "lanes-go-webhook")
    return [str(binary), "-host", "127.0.0.1", "-port", str(port), "-cert-dir", str(tls.dir)]


SERVERS: dict[str, ServerSpec] = {
    "lanes": ServerSpec("lanes", "Lanes (lanes-webhook serve)", "/mutate", _lanes),
    "kopf": ServerSpec("kopf", "kopf WebhookServer + same admit_pod", "/mutate-pods", _python("bench.peers.kopf_peer")),
    "go": ServerSpec("go", "Go controller-runtime (ported subset)", "/mutate", _go),
    "floor": ServerSpec("floor", "floor: uvicorn + raw ASGI /mutate (Lanes' stack), allowed, no work", "/mutate",
                        _python("bench.peers.floor", "--stack", "lean")),
    "lanes_fastapi": ServerSpec("lanes_fastapi", "Lanes with /mutate routed through FastAPI", "/mutate",
                                _python("bench.peers.lanes_variant", "--routing", "fastapi")),
    "lanes_h11": ServerSpec("lanes_h11", "Lanes on uvicorn's h11 parser and the asyncio loop", "/mutate",
                            _python("bench.peers.lanes_variant", "--http", "h11", "--loop", "asyncio")),
    "floor_h11": ServerSpec("floor_h11", "floor on h11 + asyncio, raw ASGI /mutate", "/mutate",
                            _python("bench.peers.floor", "--stack", "lean", "--http", "h11", "--loop", "asyncio")),
    "floor_fastapi": ServerSpec("floor_fastapi", "floor: FastAPI route + uvicorn, allowed, no work", "/mutate",
                                _python("bench.peers.floor", "--stack", "fastapi")),
}
FLOORS = ("floor", "floor_fastapi", "floor_h11")
ORDER = ("lanes", "floor", "lanes_h11", "floor_h11", "lanes_fastapi", "floor_fastapi", "kopf", "go")


# --- correctness ---------------------------------------------------------------------------------------------------


def _post(url: str, body: bytes, tls: Tls, timeout: float = 5.0) -> dict[str, Any]:
    import httpx

    with httpx.Client(verify=tls.client_context(), timeout=timeout) as client:
        response = client.post(url, content=body, headers={"Content-Type": "application/json"})
    if response.status_code != 200:
        raise BenchError(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")
    result: dict[str, Any] = response.json()
    return result


def _mutated(name: str, answer: dict[str, Any]) -> dict[str, Any] | None:
    """The pod after applying the server's answer, or None when it answered without a patch."""
    import jsonpatch

    response = answer.get("response") or {}
    if response.get("uid") != bodies.UID or response.get("allowed") is not True:
        raise BenchError(f"bad AdmissionReview answer: {json.dumps(response)[:300]}")
    if "patch" not in response:
        return None
    ops = json.loads(base64.b64decode(response["patch"]))
    mutated: dict[str, Any] = jsonpatch.apply_patch(bodies.BODIES[name](), ops)
    return mutated


def _normalized(pod: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between implementations: everything but the status annotation's text (the Go port
    records a smaller config) and typed round-trip artifacts (``status: {}``, ``creationTimestamp: null``)."""
    pod = json.loads(json.dumps(pod))
    pod["metadata"].pop("creationTimestamp", None)
    if pod.get("status") == {}:
        pod.pop("status")
    annotations = pod["metadata"].get("annotations") or {}
    if "lanes.io/status" in annotations:
        annotations["lanes.io/status"] = "<present>"
    return pod


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if type(a) is not type(b):
        return [path or "/"]
    if isinstance(a, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}/{key}")
            else:
                out += _differences(a[key], b[key], f"{path}/{key}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}[len {len(a)} vs {len(b)}]"]
        out = []
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _differences(x, y, f"{path}/{index}")
        return out
    return [] if a == b else [path]


# --- load tools ------------------------------------------------------------------------------------------------------


def _wrk(url: str, body_file: Path, seconds: int) -> dict[str, Any]:
    wrk = require("wrk", "apt-get install -y wrk")
    command = pinned(LOAD_CORE, [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "5s",
                                 "-s", str(BENCH_DIR / "wrk" / "admission.lua"), url, "--", str(body_file)])
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            data: dict[str, Any] = json.loads(line.removeprefix("BENCH-JSON "))
            return data
    raise BenchError(f"wrk printed no result (exit {result.returncode}): {result.stderr[-500:]}{result.stdout[-500:]}")


def _loadgen(url: str, body_file: Path, tls: Tls, rate: float, seconds: float, out: Path) -> dict[str, Any]:
    command = pinned(LOAD_CORE, [
        str(loadgen_binary()), "-url", url, "-method", "POST", "-body", str(body_file),
        "-header", "Content-Type: application/json", "-rate", f"{rate:.1f}", "-duration", f"{seconds}s",
        "-warmup", "500ms", "-connections", str(CONNECTIONS), "-cacert", str(tls.ca), "-timeout", "5s",
        "-grace", "3s", "-out", str(out),
    ])
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0 or not out.exists():
        raise BenchError(f"lanes-loadgen failed (exit {result.returncode}): {result.stderr[-800:]}")
    data: dict[str, Any] = json.loads(out.read_text())
    return data


# --- one server ----------------------------------------------------------------------------------------------------


def _start_server(spec: ServerSpec, tls: Tls, work: Path) -> tuple[Proc, str]:
    port = free_port()
    command = pinned(SERVER_CORE, spec.command(port, tls))
    env = {"PYTHONUNBUFFERED": "1"}
    proc = start(f"server-{spec.name}", command, work / "logs", env=env)
    url = f"https://127.0.0.1:{port}{spec.path}"
    small = bodies.encoded("small")
    wait_for(lambda: _post(url, small, tls, timeout=2) is not None, 60, f"{spec.name} server", proc, proc.log,
             interval=0.2)
    return proc, url


def _measure_server(spec: ServerSpec, tls: Tls, work: Path, files: dict[str, Path], params: Params,
                    lanes_saturation: dict[str, float]) -> dict[str, Any]:
    say(f"admission: starting {spec.title}")
    proc, url = _start_server(spec, tls, work)
    out: dict[str, Any] = {"title": spec.title, "url_path": spec.path, "bodies": {}}
    try:
        out["rss_idle_kb"] = memory_kb(proc.pid)["rss_kb"]
        mutated = {name: _mutated(name, _post(url, files[name].read_bytes(), tls)) for name in BODY_NAMES}
        for name in BODY_NAMES:
            size = files[name].stat().st_size
            say(f"admission: {spec.name} {name} body ({size} B): saturation {params.saturation_s}s")
            if params.warmup_s:
                _wrk(url, files[name], params.warmup_s)  # warm-up, not recorded
            cpu0, t0, ticks0 = cpu_seconds(proc.pid), time.monotonic(), cpu_ticks()
            sat = _wrk(url, files[name], params.saturation_s)
            cpu1, t1, ticks1 = cpu_seconds(proc.pid), time.monotonic(), cpu_ticks()
            requests = int(sat["requests"])
            errors = sum(int(v) for v in sat["errors"].values())
            duration = sat["duration_us"] / 1e6
            body: dict[str, Any] = {
                "review_bytes": size,
                "saturation": {
                    "tool": f"wrk -t1 -c{CONNECTIONS} (closed loop)",
                    "duration_s": rounded(duration),
                    "requests": requests,
                    "errors": errors,
                    "error_detail": sat["errors"],
                    "throughput_rps": rounded(requests / duration if duration else 0.0, 1),
                    "latency_ms": {k: rounded(v / 1000.0) for k, v in sat["latency_us"].items()},
                    "cpu_us_per_request": rounded((cpu1 - cpu0) / requests * 1e6, 1) if requests else None,
                    "server_cpu_utilization": rounded((cpu1 - cpu0) / (t1 - t0), 3),
                    "vm_steal_percent": steal_percent(ticks0, ticks1),
                },
                "fixed_rate": [],
            }
            if spec.name == "lanes":
                lanes_saturation[name] = body["saturation"]["throughput_rps"]
            for fraction in RATE_FRACTIONS:
                rate = max(10.0, fraction * lanes_saturation.get(name, 0.0))
                say(f"admission: {spec.name} {name}: fixed rate {rate:.0f}/s ({fraction:.0%} of Lanes' saturation)"
                    f" for {params.rate_s:g}s")
                cpu0, ticks0 = cpu_seconds(proc.pid), cpu_ticks()
                run = _loadgen(url, files[name], tls, rate, params.rate_s, work / f"lg-{spec.name}-{name}.json")
                cpu1, ticks1 = cpu_seconds(proc.pid), cpu_ticks()
                answered = max(1, int(run["completed"]) + int(run.get("warmup_requests", 0)))
                body["fixed_rate"].append({
                    "fraction_of_lanes_saturation": fraction,
                    "tool": "bench/loadgen (open loop, latency from intended send time)",
                    "rate_rps": rounded(rate, 1),
                    "achieved_rps": rounded(run["achieved_rate"], 1),
                    "scheduled": run["scheduled"],
                    "ok": run["ok"],
                    "errors": run["errors"] + run["not_sent"],
                    "error_classes": run["error_classes"],
                    # no answered request in the window (possible in --quick on a loaded machine): say so
                    "latency_ms": {"p50": None, "p99": None}
                    | {k: rounded(v) for k, v in run["latency_ms"].items()},
                    "cpu_us_per_request": rounded((cpu1 - cpu0) / answered * 1e6, 1),
                    "loadgen_max_dispatch_lag_ms": run["max_dispatch_lag_ms"],
                    "vm_steal_percent": steal_percent(ticks0, ticks1),
                    "overloaded": run["not_sent"] > 0 or (run["latency_ms"].get("p99", 0) > 1000),
                })
            body["mutated"] = mutated[name] is not None
            out["bodies"][name] = body
        memory = memory_kb(proc.pid)
        out["rss_kb"] = memory["rss_kb"]
        out["rss_peak_kb"] = memory["hwm_kb"]
        out["_mutated"] = mutated
    finally:
        kill_quietly(proc)
    return out


# --- the benchmark -----------------------------------------------------------------------------------------------


def check_tools() -> None:
    require("wrk", "apt-get install -y wrk")
    require("go", "install Go (the project needs it for the control plane too)")
    require_module("kopf", "pip install -e '.[bench]' (kopf)")


def run(quick: bool, work: Path, servers: tuple[str, ...] = tuple(SERVERS)) -> dict[str, Any]:
    check_tools()
    params = Params.for_mode(quick)
    tls = Tls(work / "tls")
    files = bodies.write(work / "bodies")
    # Build the compiled pieces before any timing starts.
    loadgen_binary()
    if "go" in servers:
        go_build(BENCH_DIR / "go-webhook", ".", "lanes-go-webhook")
    lanes_saturation: dict[str, float] = {}
    # Lanes first (the fixed rates derive from it), then each floor and variant right after it, so that the pairs
    # compared are measured minutes apart at most; the peers last.
    order = [s for s in ORDER if s in servers or s == "lanes"]
    results: dict[str, Any] = {}
    load_before = os.getloadavg()
    for name in order:
        results[name] = _measure_server(SERVERS[name], tls, work, files, params, lanes_saturation)
    mutated = {name: results[name].pop("_mutated") for name in results}
    counted = _count_instructions(quick, servers, tls, work)
    equivalence: dict[str, Any] = {}
    for name in results:
        if name == "lanes" or name in FLOORS:
            continue
        per_body = {}
        for body in BODY_NAMES:
            ours, theirs = mutated["lanes"][body], mutated[name][body]
            if ours is None or theirs is None:
                per_body[body] = {"equal": ours is theirs, "differences": [] if ours is theirs else ["no patch"]}
                continue
            diffs = _differences(_normalized(ours), _normalized(theirs))
            per_body[body] = {
                "equal": not diffs,
                "identical": ours == theirs,
                "differences": diffs[:20],
            }
        equivalence[name] = per_body
    return {
        "params": {"connections": CONNECTIONS, "warmup_s": params.warmup_s, "saturation_s": params.saturation_s,
                   "fixed_rate_s": params.rate_s, "rate_fractions": list(RATE_FRACTIONS),
                   "server_cpu": SERVER_CORE, "load_cpu": LOAD_CORE,
                   "body_bytes": {name: files[name].stat().st_size for name in BODY_NAMES}},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "servers": results,
        "equivalence": equivalence,
        "instructions": counted,
        "summary": summarize(results, counted),
    }


INSTRUCTION_SERVERS = ("lanes", "floor", "lanes_h11", "floor_h11", "lanes_fastapi", "floor_fastapi")
"""The Python servers whose per-request instructions are counted (kopf and Go are compared by throughput only)."""
INSTRUCTION_REQUESTS = {"small": 100, "large": 40}


def _count_instructions(quick: bool, servers: tuple[str, ...], tls: Tls, work: Path) -> dict[str, Any]:
    """Per-request instructions under callgrind (bench/instructions.py): the load-independent ratio. Full runs only
    (~2.5 min); a quick run records why it has none."""
    if quick:
        return {"skipped": "quick run (callgrind takes ~25 s per server)"}
    instructions.check_tools()
    say(f"admission: counting instructions per request under callgrind ({len(INSTRUCTION_SERVERS)} servers, "
        "~25 s each)")
    payload = {name: bodies.encoded(name) for name in BODY_NAMES}
    per_server = {}
    for name in INSTRUCTION_SERVERS:
        if name in servers:
            spec = SERVERS[name]
            per_server[name] = instructions.per_request(name, spec.command, spec.path, payload,
                                                        INSTRUCTION_REQUESTS, tls, work / "callgrind")
    return {"tool": "valgrind --tool=callgrind, counters zeroed/dumped around each batch",
            "requests": INSTRUCTION_REQUESTS, "warmup_requests": instructions.WARMUP_REQUESTS,
            "connections": instructions.CONNECTIONS, "per_request": per_server}


def summarize(results: dict[str, Any], counted: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ratios and the targets in docs/performance.md: Lanes >= 3x kopf; Lanes >= 80 % of the floor on its own stack;
    p99 <= 5 ms at half of Lanes' own saturation; the Go ratio reported as it is; and the web-stack comparison (each
    Lanes variant over the floor of its stack, each lean server over its FastAPI-routed twin)."""
    def sat(server: str, body: str) -> float | None:
        try:
            return float(results[server]["bodies"][body]["saturation"]["throughput_rps"])
        except (KeyError, TypeError):
            return None

    out: dict[str, Any] = {"bodies": {}}
    for body in BODY_NAMES:
        lanes = sat("lanes", body)
        row: dict[str, Any] = {"lanes_rps": lanes}
        for other in ("kopf", "go", "floor"):
            value = sat(other, body)
            row[f"{other}_rps"] = value
            row[f"lanes_over_{other}"] = rounded(lanes / value, 3) if lanes and value else None
        pairs = (("lanes_fastapi", "floor_fastapi"), ("lanes", "lanes_fastapi"), ("floor", "floor_fastapi"),
                 ("lanes_h11", "floor_h11"), ("lanes", "lanes_h11"), ("floor", "floor_h11"))
        for a, b in pairs:
            x, y = sat(a, body), sat(b, body)
            row[f"{a}_rps"], row[f"{b}_rps"] = x, y
            row[f"{a}_over_{b}"] = rounded(x / y, 3) if x and y else None
        for server in ("lanes", "floor", "go"):
            half = None
            for run in results.get(server, {}).get("bodies", {}).get(body, {}).get("fixed_rate", []):
                if run["fraction_of_lanes_saturation"] == 0.5:
                    half = run["latency_ms"].get("p99")
            row[f"{server}_p99_ms_at_half_saturation"] = half
        per_request = (counted or {}).get("per_request", {})
        for a, b in (("lanes", "floor"), ("lanes_fastapi", "floor_fastapi"), ("lanes", "lanes_fastapi"),
                     ("floor", "floor_fastapi"), ("lanes_h11", "floor_h11"), ("lanes", "lanes_h11"),
                     ("floor", "floor_h11")):
            x, y = per_request.get(a, {}).get(body), per_request.get(b, {}).get(body)
            # instructions per request are a cost: the throughput ratio a/b is b's count over a's
            row[f"{a}_over_{b}_by_instructions"] = rounded(y / x, 3) if x and y else None
        out["bodies"][body] = row
    return out
