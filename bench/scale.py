"""Benchmark: the Lanes controller at 1,000 / 5,000 / 10,000 pods on kwok nodes (issue #15.1).

Setup: the local control plane (etcd, kube-apiserver with a Metadata-level audit log, kwok with the harness's
gate-honouring pod stages; no scheduler, no controller-manager: pods name their node and the bench creates the
``default`` ServiceAccounts), ``N / 100`` kwok nodes, pods in namespaces labeled ``lanes=enabled``, each pod with
the ``lanes.io/registered`` readiness gate as the webhook leaves it, created at a steady rate (``--rate``, default
100 pods/s, by 8 workers; the achieved rate is recorded: the control plane may limit it). The real controller
(``python -m webhook.controller``, its own process) gates them.

Per size (cumulative: the pods of the smaller sizes stay): the controller's RSS and CPU seconds; readiness-gate
latency p50/p99, as the API server's audit log times it: kwok's status write that sets ContainersReady True ->
the controller's gate PATCH (a watch in this process is reported too, for information: under load it falls behind
and reads both updates back to back); API requests per pod start, twice: the controller's own
(audit events whose user agent is the controller's client, by verb/resource/subresource; target: one status
PATCH) and every client's (``apiserver_request_total`` deltas for pods, kwok's status updates and the bench's
creates included). After the largest size: the time to resync after a controller restart (SIGTERM, new process:
until it leads again, and until a new pod's gate is True) and after an API server restart (until a new pod's gate
is True).

Run: ``python -m bench.scale [--sizes 1000,5000,10000] [--rate 100] [--quick]``; ``--quick`` is 50 pods.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, memory_kb, percentile, rounded, say

SIZES = (1000, 5000, 10000)
QUICK_SIZES = (50,)
RATE = 100.0
PODS_PER_NODE = 100
GATE = "lanes.io/registered"
BENCH_LABEL = "lanes.bench/scale"
BENCH_AGENT = "lanes-bench/scale"
CONTROLLER_AGENT = "OpenAPI-Generator/"
"""The controller's client sends the kubernetes client's default user agent; the bench and kwok send their own."""
CONTROLLER_NAMESPACE = "lanes-system"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
"""

_REQUEST_TOTAL = re.compile(r'^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$')


@dataclass
class PodTimes:
    """Monotonic times this process's watch first saw each pod's ContainersReady and gate conditions True."""

    containers_ready: dict[str, float] = field(default_factory=dict)
    gate: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, pod: dict[str, Any]) -> None:
        now = time.monotonic()
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        status = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
        with self.lock:
            if status.get("ContainersReady") == "True":
                self.containers_ready.setdefault(key, now)
            if status.get(GATE) == "True":
                self.gate.setdefault(key, now)

    def latencies(self, keys: list[str]) -> list[float]:
        with self.lock:
            both = [k for k in keys if k in self.gate and k in self.containers_ready]
            return [self.gate[k] - self.containers_ready[k] for k in both]

    def gated(self, keys: list[str]) -> int:
        with self.lock:
            return sum(1 for k in keys if k in self.gate)


class PodWatch:
    """A watch on every bench pod (re-established on expiry), feeding :class:`PodTimes`."""

    def __init__(self, api_client: Any, times: PodTimes) -> None:
        self.api_client = api_client
        self.times = times
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PodWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        from kubernetes import client, watch

        core = client.CoreV1Api(self.api_client)
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                stream = watch.Watch().stream(
                    core.list_pod_for_all_namespaces,
                    label_selector=f"{BENCH_LABEL}=1",
                    timeout_seconds=60,
                    _preload_content=False,
                )
                for event in stream:
                    if self._stop.is_set():
                        return
                    obj = event.get("raw_object")
                    if isinstance(obj, dict):
                        self.times.observe(obj)
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


def _pod(name: str, node: str) -> dict[str, Any]:
    """A pod as the webhook leaves it for the controller: the readiness gate, pinned to a kwok node."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {BENCH_LABEL: "1", "app": "scale"}},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
            "readinessGates": [{"conditionType": GATE}],
            "terminationGracePeriodSeconds": 0,
        },
    }


class AuditCounter:
    """Counts audit events by (user agent class, verb, resource/subresource), reading the log incrementally, and
    keeps the two writes that bound each pod's gate latency, as the API server timed them (microseconds): the
    first ``pods/status`` write by kwok (its ``pod-running`` stage, the one that sets ContainersReady True; when it
    was received) and the first by the controller (the gate's PATCH; when it completed).

    Server-side times are the measure because a watch in this process cannot be: under load the bench's own
    watch falls behind, reads both updates of a pod back to back and reports 0 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.containers_ready: dict[str, float] = {}
        self.gated: dict[str, float] = {}

    def latencies(self, keys: list[str]) -> list[float]:
        both = [k for k in keys if k in self.gated and k in self.containers_ready]
        return [self.gated[k] - self.containers_ready[k] for k in both]

    def _note_status_write(self, event: dict[str, Any], controller: bool) -> None:
        ref = event.get("objectRef") or {}
        if ref.get("resource") != "pods" or ref.get("subresource") != "status":
            return
        if event.get("verb") not in ("update", "patch") or event.get("stage") != "ResponseComplete":
            return
        if int((event.get("responseStatus") or {}).get("code") or 0) >= 300:
            return
        key = f"{ref.get('namespace')}/{ref.get('name')}"
        # kwok's write counts from when the API server received it, the gate from when its PATCH completed: the
        # commit lies between the two stamps of a request, and under load a ResponseComplete stamp can trail the
        # commit by more than the gate takes (complete -> complete came out as low as -13.5 ms). So the figure
        # is an upper bound that includes kwok's own write.
        stamp = "stageTimestamp" if controller else "requestReceivedTimestamp"
        when = dt.datetime.fromisoformat(str(event[stamp])).timestamp()
        (self.gated if controller else self.containers_ready).setdefault(key, when)

    def read(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        if not self.path.exists():
            return counts
        with self.path.open("rb") as log:
            log.seek(self.offset)
            for line in log:
                if not line.endswith(b"\n"):
                    break
                self.offset += len(line)
                with contextlib.suppress(ValueError, KeyError):
                    event = json.loads(line)
                    agent = str(event.get("userAgent", ""))
                    controller = agent.startswith(CONTROLLER_AGENT)
                    if not agent.startswith(BENCH_AGENT):
                        self._note_status_write(event, controller)
                    if not controller:
                        continue
                    ref = event.get("objectRef") or {}
                    resource = ref.get("resource", "")
                    if ref.get("subresource"):
                        resource += "/" + ref["subresource"]
                    counts[f"{event.get('verb')} {resource or event.get('requestURI', '')}"] += 1
        return counts


def _request_totals(plane: Any) -> Counter[str]:
    """apiserver_request_total for pods (all clients), by verb and subresource."""
    status, body = plane.get("/metrics", timeout=30)
    totals: Counter[str] = Counter()
    if status != 200:
        return totals
    for line in body.decode(errors="replace").splitlines():
        match = _REQUEST_TOTAL.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("resource") != "pods":
            continue
        resource = "pods" + (f"/{labels['subresource']}" if labels.get("subresource") else "")
        totals[f"{labels.get('verb')} {resource}"] += int(float(match.group(2)))
    return totals


def _delta(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {key: after[key] - before.get(key, 0) for key in sorted(after) if after[key] - before.get(key, 0)}


def _metric(controller: Any, name: str) -> float | None:
    with contextlib.suppress(Exception):
        for key, value in controller.metrics().items():
            if key == name or key.startswith(name + "{"):
                return value
    return None


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


def run(
    quick: bool = False, work: Path | None = None, sizes: tuple[int, ...] | None = None, rate: float = RATE
) -> dict[str, Any]:
    from kubernetes import config as kube_config

    from devtools.controlplane import ControlPlane
    from devtools.local_controller import LocalController
    from webhook.kube.client import Kube

    sizes = tuple(sorted(sizes or (QUICK_SIZES if quick else SIZES)))
    own_work = work is None
    work = work or Path(tempfile.mkdtemp(prefix="lanes-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    policy = work / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    audit_log = work / "audit.log"
    plane = ControlPlane(
        controller_manager=False,
        scheduler=False,
        kwok=True,
        apiserver_args=[f"--audit-policy-file={policy}", f"--audit-log-path={audit_log}", "--audit-log-maxsize=0"],
        workdir=work / "controlplane",
    )
    say(f"scale: starting the control plane (sizes {sizes}, {rate:g} pods/s)")
    plane.start()
    result: dict[str, Any] = {"params": {"sizes": list(sizes), "rate_per_s": rate, "pods_per_node": PODS_PER_NODE}}
    controller: LocalController | None = None
    watcher: PodWatch | None = None
    try:
        api = kube_config.new_client_from_config(config_file=str(plane.kubeconfig))
        api.user_agent = BENCH_AGENT
        api.configuration.connection_pool_maxsize = 16
        kube = Kube(api)
        nodes = [f"scale-kwok-{i}" for i in range(max(1, -(-max(sizes) // PODS_PER_NODE)))]
        for node in nodes:
            kube.create("/api/v1/nodes", {"metadata": {"name": node, "annotations": {KWOK_NODE_ANNOTATION: "fake"}}})
        namespaces = [f"scale-{i}" for i in range(max(1, min(10, max(sizes) // 1000)))]
        for ns in [CONTROLLER_NAMESPACE, *namespaces]:
            labels = {"lanes": "enabled"} if ns != CONTROLLER_NAMESPACE else {}
            kube.create("/api/v1/namespaces", {"metadata": {"name": ns, "labels": labels}})
            kube.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "default"}})
        times = PodTimes()
        watcher = PodWatch(api, times).start()
        controller_args = [
            f"--kubeconfig={plane.kubeconfig}",
            f"--namespace={CONTROLLER_NAMESPACE}",
            "--repair=off",
            "--lease-duration=5",
            "--renew-deadline=4",
            "--retry-period=1",
            "--log-level=warning",
        ]
        controller = LocalController(controller_args, work / "controller.log").start()
        _wait(lambda: _metric(controller, "lanes_leader") == 1, 60, "controller leadership")
        audit = AuditCounter(audit_log)
        audit.read()  # start-up requests (lists, watches, the Lease) are not per pod
        created: list[str] = []
        steps = []
        for size in sizes:
            keys = _create_pods(kube, namespaces, nodes, range(len(created), size), rate)
            created += keys["created"]
            step_keys = keys["created"]
            settle = _wait(lambda keys=step_keys: times.gated(keys) == len(keys), 120 + size / 20, f"{size} gates")
            time.sleep(2)  # let the last status updates and audit lines land
            assert controller.process is not None
            own = audit.read()
            latencies = audit.latencies(step_keys)
            watched = times.latencies(step_keys)
            steps.append({
                "pods": size,
                "created": len(step_keys),
                "create_rate_achieved_per_s": rounded(keys["rate"], 1),
                "create_failures": keys["failures"],
                "controller_rss_kb": memory_kb(controller.process.pid)["rss_kb"],
                "controller_hwm_kb": memory_kb(controller.process.pid)["hwm_kb"],
                "controller_cpu_s": rounded(cpu_seconds(controller.process.pid), 2),
                "gate_latency_ms": {
                    "samples": len(latencies),
                    "min": rounded(_ms(min(latencies) if latencies else None), 1),
                    "p50": rounded(_ms(percentile(latencies, 50)), 1),
                    "p99": rounded(_ms(percentile(latencies, 99)), 1),
                    "max": rounded(_ms(max(latencies) if latencies else None), 1),
                    "measured_by": "audit: kwok's ContainersReady write received -> gate PATCH completed",
                },
                "gate_latency_ms_as_watched": {  # (info) this process's watch; compresses to 0 when it lags
                    "samples": len(watched),
                    "p50": rounded(_ms(percentile(watched, 50)), 1),
                    "p99": rounded(_ms(percentile(watched, 99)), 1),
                },
                "all_gated_after_last_create_s": rounded(settle, 2),
                "controller_requests": dict(sorted(own.items())),
                "controller_requests_per_pod": {k: rounded(v / len(step_keys), 3) for k, v in sorted(own.items())},
                "status_patches_per_pod": rounded(own.get("patch pods/status", 0) / max(1, len(step_keys)), 3),
            })
            say(f"scale: {size} pods: gate p50/p99 {steps[-1]['gate_latency_ms']['p50']}/"
                f"{steps[-1]['gate_latency_ms']['p99']} ms, controller RSS "
                f"{steps[-1]['controller_rss_kb'] / 1024:.1f} MB, {steps[-1]['status_patches_per_pod']} PATCH/pod")
        result["steps"] = steps
        result["apiserver_pod_requests_total"] = dict(sorted(_request_totals(plane).items()))
        total_pods = len(created)
        result["apiserver_pod_requests_per_pod_all_clients"] = {
            k: rounded(v / max(1, total_pods), 3) for k, v in result["apiserver_pod_requests_total"].items()
        }
        result["restarts"] = _restarts(plane, kube, controller, controller_args, work, times, namespaces[0], nodes[0])
        controller = result["restarts"].pop("_controller")
        result["summary"] = _summary(steps, result["restarts"])
    finally:
        if watcher is not None:
            watcher.stop()
        if controller is not None:
            controller.stop()
        plane.stop(remove_workdir=False)
    if own_work:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _create_pods(kube: Any, namespaces: list[str], nodes: list[str], indexes: range, rate: float) -> dict[str, Any]:
    """Create pods ``indexes`` at ``rate`` per second (request i is due at start + i / rate), 8 in flight."""
    failures: list[str] = []
    created: list[str] = []
    lock = threading.Lock()
    start = time.monotonic()

    def create(offset: int, index: int) -> None:
        due = start + offset / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ns, name = namespaces[index % len(namespaces)], f"scale-{index:05d}"
        try:
            kube.create(f"/api/v1/namespaces/{ns}/pods", _pod(name, nodes[index % len(nodes)]))
        except Exception as error:  # recorded, not fatal: the control plane may refuse under load
            with lock:
                failures.append(f"{name}: {str(error)[:120]}")
            return
        with lock:
            created.append(f"{ns}/{name}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(create, offset, index) for offset, index in enumerate(indexes)]:
            future.result()
    elapsed = time.monotonic() - start
    return {"created": created, "failures": failures[:20], "rate": len(created) / elapsed if elapsed else None}


def _probe_gate(kube: Any, times: PodTimes, namespace: str, node: str, label: str, timeout: float = 180) -> float:
    """Create one pod now; seconds until the watch sees its gate True."""
    name = f"probe-{label}-{uuid.uuid4().hex[:4]}"
    started = time.monotonic()
    _wait(lambda: _try_create(kube, namespace, name, node), timeout, f"creating {name}", interval=0.2)
    key = f"{namespace}/{name}"
    _wait(lambda: times.gated([key]) == 1, timeout, f"gate of {name}")
    return time.monotonic() - started


def _try_create(kube: Any, namespace: str, name: str, node: str) -> bool:
    try:
        kube.create(f"/api/v1/namespaces/{namespace}/pods", _pod(name, node))
        return True
    except Exception:
        return False


def _restarts(
    plane: Any, kube: Any, controller: Any, args: list[str], work: Path, times: PodTimes, ns: str, node: str
) -> dict[str, Any]:
    from devtools.local_controller import LocalController

    out: dict[str, Any] = {}
    controller.stop()
    started = time.monotonic()
    controller = LocalController(args, work / "controller.log").start(ready_timeout=120)
    out["controller_restart_to_leader_s"] = rounded(
        time.monotonic() - started + _wait(lambda: _metric(controller, "lanes_leader") == 1, 120, "leadership"), 2
    )
    out["controller_restart_to_new_pod_gated_s"] = rounded(
        time.monotonic() - started + _probe_gate(kube, times, ns, node, "ctl"), 2
    )
    out["controller_rss_after_restart_kb"] = memory_kb(controller.process.pid)["rss_kb"]
    plane.stop_apiserver()
    plane.start_apiserver()
    out["apiserver_restart_to_new_pod_gated_s"] = rounded(_probe_gate(kube, times, ns, node, "api"), 2)
    out["_controller"] = controller
    return out


def _summary(steps: list[dict[str, Any]], restarts: dict[str, Any]) -> dict[str, Any]:
    largest = steps[-1]
    per_pod_kb = [s["controller_rss_kb"] / s["pods"] for s in steps]
    return {
        "largest_pods": largest["pods"],
        "gate_p99_ms_max": max((s["gate_latency_ms"]["p99"] or 0) for s in steps),
        "controller_rss_mb_largest": rounded(largest["controller_rss_kb"] / 1024, 1),
        "rss_kb_per_pod": [rounded(v, 2) for v in per_pod_kb],
        "rss_at_most_linear": all(b <= a * 1.1 for a, b in itertools.pairwise(per_pod_kb)),
        "status_patches_per_pod": [s["status_patches_per_pod"] for s in steps],
        **{k: v for k, v in restarts.items() if not k.startswith("_")},
    }


def target_rows(result: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) rows for bench/run.py's summary table."""
    s = result["summary"]
    steps = result["steps"]
    rate = result["params"]["rate_per_s"]
    rows: list[tuple[str, str, bool | None]] = [
        (f"Readiness-gate latency p99 < 1 s at {rate:g} pods/s (ContainersReady -> gate True)",
         ", ".join(f"{st['pods']}: p50 {st['gate_latency_ms']['p50']} / p99 {st['gate_latency_ms']['p99']} ms "
                   f"({st['create_rate_achieved_per_s']}/s)" for st in steps),
         s["gate_p99_ms_max"] < 1000),
        ("Controller RSS grows at most linearly, < 200 MB at 10,000 pods",
         ", ".join(f"{st['pods']}: {st['controller_rss_kb'] / 1024:.1f} MB" for st in steps),
         (s["rss_at_most_linear"] and s["controller_rss_mb_largest"] < 200) if s["largest_pods"] >= 10000 else None),
        ("Controller API requests per pod start: one status PATCH",
         ", ".join(f"{st['pods']}: {json.dumps(st['controller_requests_per_pod'])}" for st in steps),
         all(abs((v or 0) - 1) < 0.05 for v in s["status_patches_per_pod"])),
        ("(info) resync: controller restart -> leader / new pod gated; API server restart -> new pod gated",
         f"{s['controller_restart_to_leader_s']} s / {s['controller_restart_to_new_pod_gated_s']} s; "
         f"{s['apiserver_restart_to_new_pod_gated_s']} s", None),
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated pod counts")
    parser.add_argument("--rate", type=float, default=RATE, help="pods created per second")
    parser.add_argument("--quick", action="store_true", help="50 pods (smoke)")
    parser.add_argument("--out", type=Path, help="write the JSON here")
    args = parser.parse_args(argv)
    try:
        sizes = None if args.quick else tuple(int(s) for s in args.sizes.split(",") if s.strip())
    except ValueError:
        parser.error(f"--sizes: not a comma-separated list of integers: {args.sizes!r}")
    if sizes is not None and (not sizes or min(sizes) <= 0):
        parser.error("--sizes: pod counts must be positive")
    result = run(quick=args.quick, sizes=sizes, rate=args.rate)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
