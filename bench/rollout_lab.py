"""The lossless rollout lab: a rolling replacement of real app processes behind a real L7 load balancer, under load.

Setup: three replicas of bench/lab_app.py (real processes with a cold start: 150 ms extra per request during the
first 2 s or 30 requests), behind HAProxy (Debian's, HTTP mode, round robin, no retries, no health checks: endpoints
change only through its runtime API on a unix socket: ``set server be/srvN addr``, ``state ready|maint``,
``weight``), and a constant open-loop load of 200 req/s over keep-alive connections (bench/loadgen). Every change to
the load balancer is applied after a configurable *propagation delay* (default 1 s), standing in for the time the
endpoints change needs to reach kube-proxy, an ingress controller or a mesh.

The rollout follows the Kubernetes pod lifecycle order, with ``maxSurge: 1, maxUnavailable: 0``:

1. A new pod is created (surge). It is added to the Service's endpoints once it is Ready; with readiness gates, Ready
   additionally requires every gate's condition to be True ("Pod readiness gate",
   https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-readiness-gate). The Deployment counts it
   available then, and only then scales the old ReplicaSet down by one and creates the next new pod
   ("Rolling Update Deployment", https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment,
   max surge / max unavailable).
2. The old pod becomes Terminating. Its removal from the endpoints starts *at the same time* as the kubelet's
   shutdown sequence, and the two are not synchronised ("Termination of Pods", step 3 and "Pod shutdown and
   EndpointSlices", https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination): traffic keeps
   arriving for the propagation delay.
3. The kubelet runs the ``preStop`` hook; when it returns, the container runtime sends SIGTERM ("Container hooks",
   https://kubernetes.io/docs/concepts/containers/container-lifecycle-hooks/#hook-handler-execution; the grace period
   covers both). Native sidecars (the agent) are stopped after the app containers
   (https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/#sidecar-containers-and-pod-lifecycle).

Two runs:

- ``plain``: what a bare Deployment does. No preStop, no readiness gate, no warm-up: a new pod is Ready (and added
  after the propagation delay) as soon as its port accepts connections; an old pod gets SIGTERM at once, and the app,
  which has no graceful shutdown of its own, dies while the load balancer still sends it traffic.
- ``lanes``: the real ``lanes-helper agent`` next to each app, configured through the env vars the webhook injects.
  Ready = the agent's ``/ready`` (app answers + self warm-up requests done), probed at the injected readiness probe's
  period (2 s); then the readiness gate holds for ``register-delay`` (the Lanes controller's job); preStop = GET the
  agent's ``/prestop``, which returns after the drain; then SIGTERM. Once in the load balancer, the new pod's weight
  follows the warm-up ramp ``helper.warmup.weight`` from the agent's own ready time (read from its ``/status``), set
  through the runtime API every 0.2 s, as a data-plane adapter would.

Reported per run: failed requests (any non-200 or transport error), p50/p99 latency during steady state and during
the rollout (from the first new pod's creation until the load balancer reflects the last change), the rollout
duration, and (lanes) how closely the new pods' measured traffic share followed the configured ramp. Latencies are
measured by the load generator from each request's intended send time.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import math
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.common import (
    LOAD_CORE,
    VENV_BIN,
    BenchError,
    Proc,
    free_port,
    kill_quietly,
    loadgen_binary,
    percentile,
    pinned,
    port_open,
    require,
    rms,
    rounded,
    say,
    start,
    wait_for,
)
from helper.specs import parse_curve
from helper.warmup import weight as warmup_weight

FULL_WEIGHT = 100
WEIGHT_INTERVAL = 0.2


@dataclass(frozen=True)
class LabParams:
    rate: float = 200.0
    replicas: int = 3
    propagation_s: float = 1.0
    drain_s: float = 3.0
    register_delay_s: float = 1.0
    warmup_s: float = 10.0
    curve: str = "linear"
    warmup_requests: str = "GET / x30 c6"
    probe_period_s: float = 2.0
    steady_s: float = 8.0
    tail_s: float = 6.0
    work_ms: float = 5.0
    cold_ms: float = 150.0
    cold_seconds: float = 2.0
    cold_requests: int = 30
    connections: int = 32

    @staticmethod
    def for_mode(quick: bool) -> LabParams:
        if not quick:
            return LabParams()
        return LabParams(rate=100.0, replicas=2, propagation_s=0.5, drain_s=1.0, register_delay_s=0.2,
                         warmup_s=2.0, warmup_requests="GET / x10 c5", probe_period_s=0.5, steady_s=2.0,
                         tail_s=1.0, cold_seconds=0.5, cold_requests=10)


# --- HAProxy ---------------------------------------------------------------------------------------------------------


class HAProxy:
    """HAProxy in HTTP mode; servers srv1..srvN start in maintenance and are driven through the runtime API."""

    def __init__(self, work: Path, slots: int) -> None:
        self.binary = require("haproxy", "apt-get install -y haproxy")
        self.work = work
        self.socket = work / "haproxy.sock"
        self.port = free_port()
        self.slots = slots
        servers = "\n".join(
            f"    server srv{i} 127.0.0.1:{free_port()} weight {FULL_WEIGHT} disabled" for i in range(1, slots + 1)
        )
        self.config = work / "haproxy.cfg"
        self.config.write_text(f"""global
    stats socket {self.socket} mode 600 level admin
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 10s
    timeout http-keep-alive 60s
    # like kube-proxy: a request sent to a pod that is gone fails; no retry, no redispatch
    retries 0
    option http-keep-alive
    http-reuse safe

frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be

backend be
    balance roundrobin
{servers}
""")
        self.proc: Proc | None = None

    def start(self) -> None:
        self.proc = start("haproxy", [self.binary, "-f", str(self.config), "-db"], self.work / "logs")
        wait_for(lambda: self.socket.exists() and port_open(self.port), 20, "haproxy", self.proc)

    def command(self, line: str) -> str:
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        answer = b"".join(chunks).decode(errors="replace").strip()
        if answer and not answer.startswith(("IP changed", "no need to change", "port changed")) and \
                "changed from" not in answer:
            raise BenchError(f"haproxy runtime API: {line!r} -> {answer[:200]}")
        return answer

    def stop(self) -> None:
        kill_quietly(self.proc)


# --- async HTTP probe ------------------------------------------------------------------------------------------------


async def http_get(port: int, path: str, timeout: float) -> tuple[int, bytes]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _parse_ts(text: str) -> float:
    return dt.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


# --- replicas and the lab --------------------------------------------------------------------------------------------


@dataclass
class Replica:
    slot: int
    name: str
    app_port: int
    agent_port: int
    app: Proc | None = None
    agent: Proc | None = None
    created: float = 0.0
    ramp_start: float | None = None  # wall time the warm-up ramp starts (the agent's ready time)
    in_lb: bool = False
    weight_task: asyncio.Task[None] | None = None


@dataclass
class Lab:
    params: LabParams
    mode: str  # "plain" or "lanes"
    work: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    weights: list[tuple[float, str, int]] = field(default_factory=list)  # (time, slot name, weight; 0 = out of LB)
    replicas: list[Replica] = field(default_factory=list)
    lb: HAProxy | None = None
    pending: set[asyncio.Task[Any]] = field(default_factory=set)
    ramp_windows: dict[str, float] = field(default_factory=dict)  # the agent's LANES_WARMUP per replica
    ramp_curves: dict[str, str] = field(default_factory=dict)  # the agent's LANES_WARMUP_CURVE per replica

    def event(self, kind: str, replica: Replica | None = None, **detail: Any) -> None:
        self.events.append({"t": time.time(), "kind": kind, "replica": replica.name if replica else None, **detail})

    def setup(self, slots: int) -> None:
        self.lb = HAProxy(self.work, slots)
        self.lb.start()

    def teardown(self) -> None:
        for replica in self.replicas:
            kill_quietly(replica.app)
            kill_quietly(replica.agent)
        if self.lb is not None:
            self.lb.stop()

    # one replica ----------------------------------------------------------------------------------------------------

    def start_replica(self, slot: int, curve: str | None = None, warmup_s: float | None = None) -> Replica:
        p = self.params
        replica = Replica(slot, f"srv{slot}", free_port(), free_port())
        replica.created = time.time()
        logs = self.work / "logs"
        replica.app = start(f"app-{replica.name}-{self.mode}", [
            str(VENV_BIN / "python"), "-m", "bench.lab_app", "--port", str(replica.app_port),
            "--name", replica.name, "--work-ms", str(p.work_ms), "--cold-ms", str(p.cold_ms),
            "--cold-seconds", str(p.cold_seconds), "--cold-requests", str(p.cold_requests),
        ], logs)
        self.ramp_windows[replica.name] = warmup_s if warmup_s is not None else p.warmup_s
        self.ramp_curves[replica.name] = curve or p.curve
        if self.mode == "lanes":
            env = {
                "LANES_AGENT_PORT": str(replica.agent_port),
                "LANES_APP_PORT": str(replica.app_port),
                "LANES_APP_READY_PATH": "/healthz",
                "LANES_WARMUP": str(self.ramp_windows[replica.name]),
                "LANES_WARMUP_CURVE": self.ramp_curves[replica.name],
                "LANES_WARMUP_REQUESTS": p.warmup_requests,
                "LANES_DRAIN": str(p.drain_s),
                "LANES_POD_NAME": replica.name,
                "LANES_APP": "lab",
                "LANES_LANE": "base",
            }
            replica.agent = start(f"agent-{replica.name}", [str(VENV_BIN / "lanes-helper"), "agent"], logs, env=env)
        assert self.lb is not None
        self.lb.command(f"set server be/{replica.name} addr 127.0.0.1 port {replica.app_port}")
        self.replicas.append(replica)
        self.event("created", replica)
        return replica

    async def wait_ready(self, replica: Replica) -> None:
        """Until the pod is Ready as Kubernetes would see it (gates excluded)."""
        p = self.params
        if self.mode == "plain":  # no readiness probe: Ready once the container runs; traffic finds an open port
            while not port_open(replica.app_port):
                await asyncio.sleep(0.02)
            self.event("ready", replica)
            return
        # the injected readinessProbe on the agent's /ready, every probe period (first probe right away)
        while True:
            with contextlib.suppress(OSError, TimeoutError, ValueError, IndexError):
                status, _ = await http_get(replica.agent_port, "/ready", 1.0)
                if status == 200:
                    break
            await asyncio.sleep(p.probe_period_s)
        _, body = await http_get(replica.agent_port, "/status", 2.0)
        import json

        status_doc = json.loads(body)
        replica.ramp_start = _parse_ts(status_doc["phases"]["ready"])
        self.event("ready", replica, agent_ready=replica.ramp_start,
                   warmup_requests=status_doc["warmup"]["requests"])

    async def make_available(self, replica: Replica, ramp: bool = True) -> None:
        """Ready -> (readiness gate) -> endpoints; returns when the Deployment would count the pod available."""
        await self.wait_ready(replica)
        if self.mode == "lanes":
            await asyncio.sleep(self.params.register_delay_s)  # the Lanes controller's register-delay
            self.event("registered", replica)
        self._later(self._lb_add(replica, ramp))

    async def _lb_add(self, replica: Replica, ramp: bool) -> None:
        await asyncio.sleep(self.params.propagation_s)
        assert self.lb is not None
        weight = self._weight(replica) if ramp else FULL_WEIGHT
        self.lb.command(f"set server be/{replica.name} weight {weight}")
        self.lb.command(f"set server be/{replica.name} state ready")
        replica.in_lb = True
        self.weights.append((time.time(), replica.name, weight))
        self.event("lb_add", replica, weight=weight)
        if ramp and self.mode == "lanes" and replica.ramp_start is not None:
            replica.weight_task = asyncio.create_task(self._ramp(replica))

    def _weight(self, replica: Replica, now: float | None = None) -> int:
        if self.mode != "lanes" or replica.ramp_start is None:
            return FULL_WEIGHT
        status = self._agent_curve(replica)
        elapsed = (now or time.time()) - replica.ramp_start
        return max(1, round(warmup_weight(elapsed, status[0], status[1], float(FULL_WEIGHT))))

    def _agent_curve(self, replica: Replica) -> tuple[float, Any]:
        """(window, Curve) exactly as configured in the replica's agent (LANES_WARMUP, LANES_WARMUP_CURVE)."""
        window = self.ramp_windows.get(replica.name, self.params.warmup_s)
        return window, parse_curve(self.ramp_curves.get(replica.name, self.params.curve))

    async def _ramp(self, replica: Replica) -> None:
        assert self.lb is not None and replica.ramp_start is not None
        window, _ = self._agent_curve(replica)
        last = -1
        while replica.in_lb:
            now = time.time()
            weight = self._weight(replica, now)
            if weight != last:
                self.lb.command(f"set server be/{replica.name} weight {weight}")
                self.weights.append((now, replica.name, weight))
                last = weight
            if now - replica.ramp_start >= window:
                self.event("ramp_done", replica)
                return
            await asyncio.sleep(WEIGHT_INTERVAL)

    async def terminate(self, replica: Replica) -> None:
        """Pod deletion: endpoint removal (after the propagation delay) races the kubelet's preStop + SIGTERM."""
        self.event("terminating", replica)
        self._later(self._lb_remove(replica))
        if self.mode == "lanes" and replica.agent is not None:
            try:
                status, _ = await http_get(replica.agent_port, "/prestop", self.params.drain_s + 10)
                self.event("prestop_returned", replica, status=status)
            except (OSError, TimeoutError) as exc:
                self.event("prestop_failed", replica, error=repr(exc))
        assert replica.app is not None
        replica.app.send(15)  # SIGTERM: the app has no graceful shutdown of its own and dies at once
        self.event("sigterm", replica)
        await asyncio.to_thread(replica.app.process.wait, 10)
        self.event("exited", replica)
        if replica.agent is not None:  # native sidecars stop after the app containers
            replica.agent.send(15)
            await asyncio.to_thread(replica.agent.process.wait, 10)

    async def _lb_remove(self, replica: Replica) -> None:
        await asyncio.sleep(self.params.propagation_s)
        assert self.lb is not None
        replica.in_lb = False
        self.lb.command(f"set server be/{replica.name} state maint")
        self.weights.append((time.time(), replica.name, 0))
        self.event("lb_remove", replica)

    def _later(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def settle(self) -> None:
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)

    async def warm_directly(self, replica: Replica) -> None:
        """Setup only (initial replicas): wait out the cold start and serve the lazy-init requests."""
        p = self.params
        while not port_open(replica.app_port):
            await asyncio.sleep(0.02)
        for _ in range(p.cold_requests):
            await http_get(replica.app_port, "/", 5.0)
        remaining = p.cold_seconds - (time.time() - replica.created)
        if remaining > 0:
            await asyncio.sleep(remaining)


# --- load ------------------------------------------------------------------------------------------------------------


class Load:
    """bench/loadgen against the load balancer until stopped (SIGTERM), recording every request."""

    def __init__(self, lab: Lab, name: str) -> None:
        assert lab.lb is not None
        self.records_path = lab.work / f"records-{name}.csv"
        self.summary_path = lab.work / f"load-{name}.json"
        p = lab.params
        self.proc = start(f"loadgen-{name}", pinned(LOAD_CORE, [
            str(loadgen_binary()), "-url", f"http://127.0.0.1:{lab.lb.port}/", "-rate", str(p.rate),
            "-duration", "600s", "-connections", str(p.connections), "-timeout", "5s", "-grace", "6s",
            "-record-header", "X-Instance", "-records", str(self.records_path), "-out", str(self.summary_path),
        ]), lab.work / "logs")
        self.started = time.time()

    async def stop(self) -> list[dict[str, Any]]:
        self.proc.send(15)
        await asyncio.to_thread(self.proc.process.wait, 30)
        if not self.records_path.exists():
            raise BenchError(f"loadgen wrote no records (exit {self.proc.process.returncode})")
        with self.records_path.open() as handle:
            return [
                {"t": float(row["intended_unix"]), "latency_ms": float(row["latency_ms"]),
                 "status": int(row["status"]), "error": row["error"], "instance": row["header"]}
                for row in csv.DictReader(handle)
            ]


# --- analysis --------------------------------------------------------------------------------------------------------


def latency_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r["latency_ms"] for r in rows if not r["error"]]
    failed = [r for r in rows if r["error"]]
    classes: dict[str, int] = {}
    for r in failed:
        classes[r["error"]] = classes.get(r["error"], 0) + 1
    return {
        "requests": len(rows),
        "failed": len(failed),
        "failure_classes": classes,
        "p50_ms": rounded(percentile(ok, 50)),
        "p99_ms": rounded(percentile(ok, 99)),
        "max_ms": rounded(max(ok) if ok else None),
    }


def expected_shares(weights: Sequence[tuple[float, str, float]], start: float, end: float,
                    step: float = 0.01) -> dict[str, float]:
    """Average over [start, end) of each server's share w_i / sum(w) given the weight log (0 = not in the LB)."""
    ordered = sorted(weights)
    current: dict[str, float] = {}
    index = 0
    totals: dict[str, float] = {}
    samples = 0
    t = start
    while t < end:
        while index < len(ordered) and ordered[index][0] <= t:
            current[ordered[index][1]] = ordered[index][2]
            index += 1
        total = sum(current.values())
        if total > 0:
            for name, w in current.items():
                totals[name] = totals.get(name, 0.0) + w / total
            samples += 1
        t += step
    return {name: value / samples for name, value in totals.items()} if samples else {}


def share_series(rows: list[dict[str, Any]], weights: Sequence[tuple[float, str, float]], start: float, end: float,
                 bucket: float) -> list[dict[str, Any]]:
    """Per bucket: measured share of each instance (by intended send time) and the expected share from the weights
    that were set."""
    out = []
    t = start
    while t + bucket <= end + 1e-9:
        inside = [r for r in rows if t <= r["t"] < t + bucket and not r["error"]]
        counts: dict[str, int] = {}
        for r in inside:
            counts[r["instance"]] = counts.get(r["instance"], 0) + 1
        total = len(inside)
        out.append({
            "t0": t,
            "measured": {k: v / total for k, v in counts.items()} if total else {},
            "expected": expected_shares(weights, t, t + bucket),
            "requests": total,
        })
        t += bucket
    return out


def configured_weight_log(lab: Lab, end: float, step: float = 0.01) -> list[tuple[float, str, float]]:
    """The weights the *configured* curves call for (continuous ``helper.warmup.weight``), while each instance is in
    the load balancer according to the lab's add/remove log; instances that do not ramp have full weight."""
    log: list[tuple[float, str, float]] = []
    ordered = sorted(lab.weights)
    for replica in lab.replicas:
        entries = [(t, w) for t, name, w in ordered if name == replica.name]
        added = next((t for t, w in entries if w > 0), None)
        if added is None:
            continue
        removed = next((t for t, w in entries if w == 0 and t > added), end)
        ramps = replica.weight_task is not None and replica.ramp_start is not None
        if not ramps:
            log.append((added, replica.name, float(FULL_WEIGHT)))
        else:
            assert replica.ramp_start is not None
            window, curve = lab._agent_curve(replica)
            t = added
            while t < removed:
                log.append((t, replica.name, warmup_weight(t - replica.ramp_start, window, curve, float(FULL_WEIGHT))))
                t += step
        log.append((removed, replica.name, 0.0))
    return sorted(log)


def ramp_deviation(lab: Lab, rows: list[dict[str, Any]], bucket: float = 1.0) -> dict[str, Any]:
    """RMS of (measured - expected share) of each instance while its weight ramps, per bucket, in percentage points.
    'Expected' comes from the configured curves (:func:`configured_weight_log`) at the agent's ramp clock."""
    end = max(r["t"] for r in rows) if rows else time.time()
    configured = configured_weight_log(lab, end)
    deviations: list[float] = []
    per_instance: dict[str, list[dict[str, Any]]] = {}
    for replica in lab.replicas:
        if replica.ramp_start is None or replica.weight_task is None:
            continue
        added = next((t for t, name, w in sorted(lab.weights) if name == replica.name and w > 0), None)
        if added is None:
            continue
        window, _ = lab._agent_curve(replica)
        removed = next((t for t, name, w in sorted(lab.weights) if name == replica.name and w == 0 and t > added),
                       math.inf)
        for point in share_series(rows, configured, added + 0.05, min(replica.ramp_start + window, removed, end),
                                  bucket):
            measured = point["measured"].get(replica.name, 0.0)
            expected = point["expected"].get(replica.name, 0.0)
            deviations.append((measured - expected) * 100)
            per_instance.setdefault(replica.name, []).append(
                {"t": rounded(point["t0"] + bucket / 2 - replica.ramp_start, 3), "measured": rounded(measured, 4),
                 "expected": rounded(expected, 4), "requests": point["requests"]})
    return {"bucket_s": bucket, "points": len(deviations), "rms_pp": rounded(rms(deviations), 2),
            "max_abs_pp": rounded(max((abs(d) for d in deviations), default=None), 2), "series": per_instance}


# --- one run ---------------------------------------------------------------------------------------------------------


async def _rollout(mode: str, params: LabParams, work: Path) -> dict[str, Any]:
    lab = Lab(params, mode, work)
    slots = params.replicas * 2
    lab.setup(slots)
    load: Load | None = None
    try:
        say(f"rollout lab [{mode}]: starting {params.replicas} warm replicas behind HAProxy")
        old = [lab.start_replica(i + 1) for i in range(params.replicas)]
        await asyncio.gather(*(lab.warm_directly(r) for r in old))
        for replica in old:  # initial replicas: already warm, full weight, no propagation wait
            assert lab.lb is not None
            lab.lb.command(f"set server be/{replica.name} state ready")
            replica.in_lb = True
            lab.weights.append((time.time(), replica.name, FULL_WEIGHT))
        load = Load(lab, mode)
        await asyncio.sleep(params.steady_s)
        say(f"rollout lab [{mode}]: rolling {params.replicas} replicas (maxSurge 1, maxUnavailable 0)")
        rollout_start = time.time()
        lab.event("rollout_start")
        terminations = []
        for i, previous in enumerate(old):
            new = lab.start_replica(params.replicas + i + 1)
            await lab.make_available(new)
            terminations.append(asyncio.create_task(lab.terminate(previous)))
        await asyncio.gather(*terminations)
        await lab.settle()
        last_change = max(w[0] for w in lab.weights)
        rollout_end = max(last_change, max(e["t"] for e in lab.events if e["kind"] in ("exited", "lb_add")))
        lab.event("rollout_end")
        say(f"rollout lab [{mode}]: rollout took {rollout_end - rollout_start:.1f}s; tail {params.tail_s:.0f}s")
        tail = params.tail_s
        ramps = [r for r in lab.replicas if r.weight_task is not None]
        if ramps:
            tail = max(tail, max(r.ramp_start + params.warmup_s for r in ramps if r.ramp_start) - time.time() + 1)
        await asyncio.sleep(tail)
        rows = await load.stop()
        load = None
        window_end = rollout_end + params.propagation_s
        first = rows[0]["t"] if rows else rollout_start
        # steady state: before the rollout (after 1 s of load) and after it (from 1 s after the window)
        steady_rows = [r for r in rows if first + 1.0 <= r["t"] < rollout_start or r["t"] >= window_end + 1.0]
        rollout_rows = [r for r in rows if rollout_start <= r["t"] < window_end]
        result: dict[str, Any] = {
            "mode": mode,
            "rollout_duration_s": rounded(rollout_end - rollout_start, 2),
            "total": latency_stats(rows),
            "steady": latency_stats(steady_rows),
            "rollout": latency_stats(rollout_rows),
            "failed_requests": sum(1 for r in rows if r["error"]),
            "events": [{**e, "t": rounded(e["t"] - rollout_start, 3)} for e in lab.events],
        }
        steady_p99, rollout_p99 = result["steady"]["p99_ms"], result["rollout"]["p99_ms"]
        result["rollout_p99_over_steady"] = rounded(rollout_p99 / steady_p99, 2) if steady_p99 and rollout_p99 else None
        if mode == "lanes":
            result["ramp"] = ramp_deviation(lab, rows)
        result["_rows"] = rows
        result["_t0"] = rollout_start
        result["_window"] = (rollout_start, window_end)
        result["_lab"] = lab
        return result
    finally:
        if load is not None:
            with contextlib.suppress(Exception):
                await load.stop()
        lab.teardown()


def run(quick: bool, work: Path, plots_dir: Path | None = None) -> dict[str, Any]:
    require("haproxy", "apt-get install -y haproxy")
    loadgen_binary()
    params = LabParams.for_mode(quick)
    runs = {}
    for mode in ("plain", "lanes"):
        mode_work = work / mode
        mode_work.mkdir(parents=True, exist_ok=True)
        runs[mode] = asyncio.run(_rollout(mode, params, mode_work))
    plots: dict[str, str] = {}
    if plots_dir is not None:
        from bench import plots as plotting

        plots["latency"] = str(plotting.rollout_latency(runs, plots_dir / "rollout_latency.png"))
        plots["share"] = str(plotting.rollout_share(runs["lanes"], plots_dir / "rollout_share.png"))
    for result in runs.values():
        for key in [k for k in result if k.startswith("_")]:
            del result[key]
    lanes, plain = runs["lanes"], runs["plain"]
    return {
        "params": {**params.__dict__, "haproxy": "roundrobin, retries 0, runtime API over a unix socket",
                   "load": f"bench/loadgen open loop {params.rate:g} req/s, keep-alive, {params.connections} conns"},
        "runs": runs,
        "summary": {
            "plain_failed": plain["failed_requests"],
            "lanes_failed": lanes["failed_requests"],
            "plain_rollout_p99_ms": plain["rollout"]["p99_ms"],
            "lanes_rollout_p99_ms": lanes["rollout"]["p99_ms"],
            "lanes_steady_p99_ms": lanes["steady"]["p99_ms"],
            "lanes_rollout_p99_over_steady": lanes["rollout_p99_over_steady"],
            "plain_rollout_duration_s": plain["rollout_duration_s"],
            "lanes_rollout_duration_s": lanes["rollout_duration_s"],
            "lanes_ramp_rms_pp": lanes.get("ramp", {}).get("rms_pp"),
        },
        "plots": plots,
        "cpus": os.cpu_count(),
    }


__all__ = ["Lab", "LabParams", "Load", "latency_stats", "ramp_deviation", "replace", "run", "share_series"]
