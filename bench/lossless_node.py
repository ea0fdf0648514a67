"""The lossless benchmark on a real node (issue 12.6): plain Kubernetes against Lanes, same node, same run.

A real kubelet, containerd, CNI bridge and kube-proxy (iptables) from devtools/realnode; the chart installed with
helm from the images built here (devtools/images). Two namespaces, ``plain`` and ``lanes`` (labelled
``lanes=enabled``), each with the sample app (examples/sample-app) as a 3-replica Deployment (maxSurge 1,
maxUnavailable 0, readiness probe on /healthz) behind a ClusterIP Service. A load client in a pod of a third,
plain namespace (bench/lossless_node_client.py; a client in the node's own namespace is source-NATed and loses
connects to conntrack clashes) sends a constant rate through kube-proxy to the Service's ClusterIP, half on
persistent keep-alive connections, half on a new connection per request, 2 s timeout.

Cases: the app ``graceful`` and ``abrupt`` on SIGTERM, times three disruptions: ``kubectl rollout restart``, a
scale down 3 -> 2, and an eviction (policy/v1 Eviction of one pod); each in the plain and the Lanes namespace,
interleaved so both see the same machine. Each case: conntrack of the node flushed (stale entries to deleted pod
IPs otherwise carry over into the next case), a steady phase, the disruption, until the Deployment is back to its
replicas with no pod terminating, then a short tail. Reported per case and connection mode: failed requests (after
the one retry a pooled HTTP client makes on a reused connection closed under it, and without it), p99 latency
during the disruption against the steady phase, and the disruption's duration.

Lanes settings in the lanes namespace: drain 10 s, register delay 2 s (pod template annotations).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import BenchError, ToolMissing, percentile, rounded, say

CLIENT_SOURCE = Path(__file__).with_name("lossless_node_client.py")
CONTROL_PORT = 9000
APP = "app"
REPLICAS = 3
MODES = ("keepalive", "new")
DISRUPTIONS = ("rollout", "scale-down", "evict")
APPS = ("graceful", "abrupt")
LANES_ANNOTATIONS = {"lanes.io/drain": "10s", "lanes.io/register-delay": "2s"}
#: what Lanes claims to make lossless; an abrupt app drops what is in flight on its kept-alive connections when
#: it exits (kube-proxy never moves an established connection), which no drain can prevent
CLAIMED = {(app, mode) for app in APPS for mode in MODES} - {("abrupt", "keepalive")}


@dataclass(frozen=True)
class Workload:
    """What a case loads and disrupts: the benchmark's one Deployment by default; ``make demo`` on the real node
    (devtools/demo_node.py) passes the examples' Deployments it restarts, the label of all their pods and how many."""

    deployments: tuple[str, ...] = (APP,)
    label: str = f"app={APP}"
    replicas: int = REPLICAS
    port: int = 80
    #: the load client's timeout per request (per socket operation)
    timeout: float = 2.0


BENCH_WORKLOAD = Workload()


# --- pure: summarising one case ----------------------------------------------------------------------------------


def summarize(records: list[list[Any]], begin: float, end: float, mode: str) -> dict[str, Any]:
    """One mode's requests of a case: ``records`` are ``[mode, start, latency_s, outcome, retried]``, the
    disruption ran from ``begin`` to ``end`` (epoch seconds). Steady = requests started before ``begin``; during =
    from ``begin`` to ``end`` + 2 s (an exit just before ``end`` still shows up)."""
    rows = [r for r in records if r[0] == mode]
    failed = [r for r in rows if r[3] != "ok"]
    retried = [r for r in rows if r[4]]
    steady = [r[2] for r in rows if r[1] < begin and r[3] == "ok"]
    during = [r[2] for r in rows if begin <= r[1] <= end + 2.0]
    steady_p99 = percentile(steady, 99)
    during_p99 = percentile(during, 99)
    return {
        "requests": len(rows),
        "failed": len(failed),
        # a retried request failed its first attempt whatever the retry did
        "failed_without_retry": len({id(r) for r in failed} | {id(r) for r in retried}),
        "retried": len(retried),
        "errors": dict(Counter(r[3] for r in failed)),
        "failed_at_s": [round(r[1] - begin, 3) for r in failed][:50],
        "steady_p99_ms": rounded(steady_p99 * 1000 if steady_p99 is not None else None, 2),
        "during_p99_ms": rounded(during_p99 * 1000 if during_p99 is not None else None, 2),
        "p99_ratio": rounded(during_p99 / steady_p99, 2) if steady_p99 and during_p99 is not None else None,
    }


def summary(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the cases, the claimed ones apart."""
    out: dict[str, Any] = {}
    for kind in ("plain", "lanes"):
        mine = [c for c in cases if c["namespace"] == kind]
        claimed = [(c, m) for c in mine for m in MODES if (c["app"], m) in CLAIMED]
        everything = [(c, m) for c in mine for m in MODES]
        ratios = [c["modes"][m]["p99_ratio"] for c, m in everything if c["modes"][m]["p99_ratio"] is not None]
        out[kind] = {
            "failed_claimed": sum(c["modes"][m]["failed"] for c, m in claimed),
            "requests_claimed": sum(c["modes"][m]["requests"] for c, m in claimed),
            "failed_all": sum(c["modes"][m]["failed"] for c, m in everything),
            "failed_without_retry_all": sum(c["modes"][m]["failed_without_retry"] for c, m in everything),
            "requests_all": sum(c["modes"][m]["requests"] for c, m in everything),
            "worst_p99_ratio": max(ratios) if ratios else None,
            "duration_s": {d: rounded(max((c["duration_s"] for c in mine if c["disruption"] == d), default=None), 1)
                           for d in DISRUPTIONS},
        }
    return out


# --- the cluster -------------------------------------------------------------------------------------------------


def _deployment(app_mode: str, image: str, lanes: bool) -> dict[str, Any]:
    container = {
        "name": APP,
        "image": image,
        "imagePullPolicy": "Never",
        "env": [{"name": "SIGTERM", "value": app_mode}, {"name": "GRACE", "value": "5"},
                {"name": "NAME", "value": APP}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1,
                           "failureThreshold": 1},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": APP}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": APP}, "annotations": dict(LANES_ANNOTATIONS) if lanes else {}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 30},
            },
        },
    }


def _service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": APP},
        "spec": {"selector": {"app": APP}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def client_objects(image: str) -> list[dict[str, Any]]:
    """The load client pod and the ConfigMap with its code (``make demo`` on the real node uses them too)."""
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "load-client"},
         "data": {"client.py": CLIENT_SOURCE.read_text()}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "load-client", "labels": {"app": "load-client"}},
            "spec": {
                "containers": [{
                    "name": "client", "image": image, "imagePullPolicy": "Never",
                    "command": ["python3", "/client/client.py"],
                    "ports": [{"containerPort": CONTROL_PORT}],
                    "volumeMounts": [{"name": "code", "mountPath": "/client", "readOnly": True}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": CONTROL_PORT}, "periodSeconds": 1},
                }],
                "volumes": [{"name": "code", "configMap": {"name": "load-client"}}],
                "terminationGracePeriodSeconds": 1,
            },
        },
    ]


class Cluster:
    """The real node, with kubectl inside its namespace and a Kubernetes client from the host."""

    def __init__(self, node: Any) -> None:
        from kubernetes import client, config

        self.node = node
        api = config.new_client_from_config(config_file=str(node.kubeconfig))
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.client = client

    def kubectl(self, *args: str, timeout: float = 240, stdin: str | None = None) -> str:
        command = [str(self.node.binary("kubectl")), f"--kubeconfig={self.node.ns_kubeconfig}", *args]
        try:
            result = self.node.run(command, timeout=timeout, input=stdin)
        except subprocess.TimeoutExpired as error:
            raise BenchError(f"kubectl {' '.join(args)}: no answer in {timeout:.0f}s") from error
        if result.returncode != 0:
            raise BenchError(f"kubectl {' '.join(args)}: {result.stderr.strip()[-800:]}")
        return str(result.stdout)

    def apply(self, namespace: str, objects: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                            "items": objects}))

    def pods(self, namespace: str, label: str = f"app={APP}") -> list[Any]:
        return list(self.core.list_namespaced_pod(namespace, label_selector=label).items)

    def settled(self, namespace: str, replicas: int, label: str = f"app={APP}") -> bool:
        """Exactly ``replicas`` pods, all Ready, none terminating."""
        pods = self.pods(namespace, label)
        if len(pods) != replicas or any(p.metadata.deletion_timestamp for p in pods):
            return False
        return all(any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or [])) for p in pods)

    def wait_settled(self, namespace: str, replicas: int, timeout: float = 240, label: str = f"app={APP}") -> float:
        started = time.monotonic()
        while not self.settled(namespace, replicas, label):
            if time.monotonic() - started > timeout:
                raise BenchError(f"{namespace}/{label} not settled at {replicas} ready pods in {timeout:.0f}s: "
                                 + "; ".join(self.describe(namespace, label)))
            time.sleep(0.2)
        return time.monotonic() - started

    def describe(self, namespace: str, label: str = f"app={APP}") -> list[str]:
        """Each pod with what keeps it from counting: terminating, or its conditions that are not True (a
        readiness gate nobody set shows up here as ``lanes.io/registered``)."""
        out = []
        for pod in self.pods(namespace, label):
            pending = [c.type for c in (pod.status.conditions or []) if c.status != "True"]
            state = "terminating" if pod.metadata.deletion_timestamp else pod.status.phase
            out.append(f"{pod.metadata.name} {state} not-true={pending}")
        return out

    def flush_conntrack(self) -> None:
        result = self.node.run(["conntrack", "-F"], timeout=30)
        if result.returncode != 0 and "0 flow entries" not in result.stderr:
            say(f"   conntrack -F: {result.stderr.strip()[:200]}")

    def evict(self, namespace: str, name: str) -> None:
        body = self.client.V1Eviction(metadata=self.client.V1ObjectMeta(name=name, namespace=namespace))
        self.core.create_namespaced_pod_eviction(name, namespace, body)


class LoadClient:
    """The control API of the client pod, through a host loopback forward into the node."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        pod = cluster.core.read_namespaced_pod("load-client", namespace)
        self.port = cluster.node.forward(pod.status.pod_ip, CONTROL_PORT)

    def _post(self, path: str, body: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = json.dumps(body).encode()
            connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answer: dict[str, Any] = json.loads(response.read())
            if response.status != 200:
                raise BenchError(f"load client {path}: HTTP {response.status} {answer}")
            return answer
        finally:
            connection.close()

    def start(self, host: str, rate: float, connections: int, port: int = 80, check_calls: bool = False,
              timeout: float = 2.0) -> None:
        """``check_calls``: a 200 whose JSON shows a failed downstream call (the sample app's ``CALL`` chain)
        counts as failed too (``downstream``), so a chain a -> b -> c loses nothing silently."""
        self._post("/start", {"host": host, "port": port, "path": "/", "rate": rate, "modes": list(MODES),
                              "timeout": timeout, "connections": connections, "max_seconds": 600,
                              "check_calls": check_calls})

    def stop(self) -> list[list[Any]]:
        return list(self._post("/stop", {}, timeout=120)["records"])


# --- one case ----------------------------------------------------------------------------------------------------


def _disrupt(cluster: Cluster, namespace: str, disruption: str, workload: Workload = BENCH_WORKLOAD) -> dict[str, Any]:
    """Start the disruption and wait until it is over; what happened, with epoch times. Only a rollout takes a
    workload of several Deployments (all restarted at once)."""
    began = time.time()
    info: dict[str, Any] = {}
    if disruption == "rollout":
        cluster.kubectl("rollout", "restart", *(f"deployment/{d}" for d in workload.deployments), "-n", namespace)
        for deployment in workload.deployments:
            try:
                cluster.kubectl("rollout", "status", f"deployment/{deployment}", "-n", namespace, "--timeout=180s",
                                timeout=200)
            except BenchError as error:
                raise BenchError(f"{error}; pods: " + "; ".join(cluster.describe(namespace, workload.label))) \
                    from error
        info["rollout_status_s"] = round(time.time() - began, 2)
        cluster.wait_settled(namespace, workload.replicas, label=workload.label)
    elif workload != BENCH_WORKLOAD:
        raise ValueError(f"{disruption} is defined for the benchmark's one Deployment only")
    elif disruption == "scale-down":
        cluster.kubectl("scale", f"deployment/{APP}", "-n", namespace, f"--replicas={REPLICAS - 1}")
        cluster.wait_settled(namespace, REPLICAS - 1)
    elif disruption == "evict":
        victim = sorted(p.metadata.name for p in cluster.pods(namespace))[0]
        cluster.evict(namespace, victim)
        info["evicted"] = victim
        cluster.wait_settled(namespace, REPLICAS)
    else:
        raise ValueError(disruption)
    info.update(began=began, ended=time.time())
    return info


def run_case(cluster: Cluster, load: LoadClient, namespace: str, kind: str, app_mode: str, disruption: str,
             host: str, params: dict[str, Any], workload: Workload = BENCH_WORKLOAD) -> dict[str, Any]:
    """One disruption under load. With another ``workload`` than the benchmark's, a 200 that shows a failed
    downstream call counts as failed (the demo's a -> b -> c chain)."""
    cluster.wait_settled(namespace, workload.replicas, label=workload.label)
    cluster.flush_conntrack()
    load.start(host, params["rate_per_mode"], params["connections"], port=workload.port,
               check_calls=workload != BENCH_WORKLOAD, timeout=workload.timeout)
    time.sleep(params["steady_s"])
    info = _disrupt(cluster, namespace, disruption, workload)
    time.sleep(params["tail_s"])
    records = load.stop()
    if disruption == "scale-down":  # back to 3 (outside the measured window) for the next case
        cluster.kubectl("scale", f"deployment/{APP}", "-n", namespace, f"--replicas={REPLICAS}")
        cluster.wait_settled(namespace, REPLICAS)
    case = {
        "namespace": kind, "app": app_mode, "disruption": disruption,
        "duration_s": round(info["ended"] - info["began"], 2),
        **{k: v for k, v in info.items() if k not in ("began", "ended")},
        "modes": {m: summarize(records, info["began"], info["ended"], m) for m in MODES},
        "_records": [[r[0], round(r[1] - info["began"], 4), r[2], r[3], r[4]] for r in records],
    }
    failed = ", ".join(f"{m} {case['modes'][m]['failed']}/{case['modes'][m]['requests']}" for m in MODES)
    say(f"   {kind:<5} {app_mode:<8} {disruption:<10} {case['duration_s']:5.1f}s  failed: {failed}")
    return case


# --- the whole run -----------------------------------------------------------------------------------------------


def _params(quick: bool) -> dict[str, Any]:
    if quick:
        return {"apps": ["abrupt"], "disruptions": ["rollout"], "rate_per_mode": 40.0, "connections": 4,
                "steady_s": 3.0, "tail_s": 2.0}
    return {"apps": list(APPS), "disruptions": list(DISRUPTIONS), "rate_per_mode": 100.0, "connections": 8,
            "steady_s": 8.0, "tail_s": 3.0}


def run(quick: bool, work: Path, results: Path | None = None) -> dict[str, Any]:
    try:
        from devtools.realnode import RealNode, RealNodeError, RealNodeUnavailable, chart
    except ImportError as error:
        raise ToolMissing(f"devtools.realnode is not importable: {error}") from error
    params = _params(quick)
    say("starting a real node (first run builds kubelet, kube-proxy, containerd and the images: minutes)")
    node = RealNode()
    try:
        node.start()
    except RealNodeUnavailable as error:
        raise ToolMissing(f"no real node here: {error}") from error
    except RealNodeError as error:
        raise BenchError(f"the real node failed to start: {error}") from error
    try:
        return _run_on(node, chart, params, quick, results)
    finally:
        node.stop()


def _run_on(node: Any, chart: Any, params: dict[str, Any], quick: bool, results: Path | None) -> dict[str, Any]:
    started = time.monotonic()
    say(f"node ready in {node.start_seconds:.1f}s; installing charts/lanes with helm")
    installed = chart.install(node)
    say(f"chart installed and injecting in {installed.install_seconds:.1f}s")
    image = node.images["sample-app"]
    cluster = Cluster(node)
    namespaces = {"plain": "lossless-plain", "lanes": "lossless-lanes", "load": "lossless-load"}
    for name in namespaces.values():
        cluster.kubectl("create", "namespace", name)
    chart.enable_namespace(node, namespaces["lanes"])  # kubectl label namespace ... lanes=enabled
    cluster.apply(namespaces["load"], client_objects(image))
    for kind in ("plain", "lanes"):
        cluster.apply(namespaces[kind], [_service()])
    hosts = {kind: cluster.core.read_namespaced_service(APP, namespaces[kind]).spec.cluster_ip
             for kind in ("plain", "lanes")}
    wait = time.monotonic()
    while not cluster.pods(namespaces["load"], "app=load-client") or not all(
        any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        for p in cluster.pods(namespaces["load"], "app=load-client")
    ):
        if time.monotonic() - wait > 120:
            raise BenchError("the load client pod did not become ready in 120 s")
        time.sleep(0.3)
    load = LoadClient(cluster, namespaces["load"])
    cases: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    broken: dict[str, str] = {}
    for app_mode in params["apps"]:
        for kind in ("plain", "lanes"):
            if kind not in broken:
                cluster.apply(namespaces[kind], [_deployment(app_mode, image, lanes=kind == "lanes")])
        for kind in ("plain", "lanes"):
            if kind in broken:
                continue
            try:
                cluster.wait_settled(namespaces[kind], REPLICAS)
            except BenchError as error:
                broken[kind] = str(error)[:2000]
            if kind == "lanes" and kind not in broken:
                check_injected(cluster, namespaces[kind])
        for disruption in params["disruptions"]:
            for kind in ("plain", "lanes"):
                if kind in broken:
                    errors.append({"namespace": kind, "app": app_mode, "disruption": disruption,
                                   "error": f"skipped: {broken[kind]}"})
                    continue
                try:
                    cases.append(run_case(cluster, load, namespaces[kind], kind, app_mode, disruption,
                                          hosts[kind], params))
                except BenchError as error:
                    # a stuck namespace stays stuck: record why, skip its other cases, go on with the other one
                    say(f"   {kind} {app_mode} {disruption}: FAILED: {error}")
                    broken[kind] = str(error)[:2000]
                    errors.append({"namespace": kind, "app": app_mode, "disruption": disruption,
                                   "error": broken[kind]})
                    with contextlib.suppress(BenchError):
                        load.stop()
    result: dict[str, Any] = {
        "params": {**params, "replicas": REPLICAS, "timeout_s": 2.0, "lanes_annotations": LANES_ANNOTATIONS,
                   "strategy": "RollingUpdate maxSurge 1 maxUnavailable 0", "claimed": sorted(map(list, CLAIMED))},
        "node_start_s": round(node.start_seconds, 1),
        "chart_install_s": round(installed.install_seconds, 1),
        "images": dict(node.images),
        "cases": [{k: v for k, v in c.items() if k != "_records"} for c in cases],
        "case_errors": errors,
        "summary": summary(cases),
        "duration_s": round(time.monotonic() - started, 1),
    }
    if errors:
        # the summary row must not read "met" on the cases that did run when others could not
        result["error"] = f"{len(errors)} case(s) did not run to the end; first: {errors[0]['namespace']} " \
                          f"{errors[0]['app']} {errors[0]['disruption']}: {errors[0]['error'][:600]}"
    if results is not None and cases:
        try:
            result["plot"] = str(plot(cases, results / "lossless_node.png"))
        except ImportError as error:
            result["plot_error"] = f"matplotlib missing: {error}"
    return result


def check_injected(cluster: Cluster, namespace: str) -> None:
    """The Lanes side must really run with the agent: a silent non-injection would compare plain with plain."""
    for pod in cluster.pods(namespace):
        names = [c.name for c in (pod.spec.init_containers or []) + pod.spec.containers]
        if not any(n.startswith("lanes-") for n in names):
            raise BenchError(f"{namespace}/{pod.metadata.name} was not injected by Lanes: containers {names}")


def plot(cases: list[dict[str, Any]], out: Path) -> Path:
    """Latency of every request over time around the disruption, plain (left) and Lanes (right), failures as x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted({(c["app"], c["disruption"]) for c in cases}, key=lambda k: (APPS.index(k[0]),
                                                                               DISRUPTIONS.index(k[1])))
    fig, axes = plt.subplots(len(rows), 2, figsize=(14, 2.6 * len(rows)), sharey=True, squeeze=False)
    colors = {"keepalive": "tab:blue", "new": "tab:green"}
    for r, key in enumerate(rows):
        for col, kind in enumerate(("plain", "lanes")):
            ax = axes[r][col]
            case = next((c for c in cases if (c["app"], c["disruption"]) == key and c["namespace"] == kind), None)
            if case is None:
                ax.set_visible(False)
                continue
            for mode in MODES:
                ok = [(x[1], max(x[2] * 1000, 0.1)) for x in case["_records"] if x[0] == mode and x[3] == "ok"]
                bad = [(x[1], max(x[2] * 1000, 0.1)) for x in case["_records"] if x[0] == mode and x[3] != "ok"]
                ax.scatter([a for a, _ in ok], [b for _, b in ok], s=2, alpha=0.35, color=colors[mode],
                           label=f"{mode} ok")
                if bad:
                    ax.scatter([a for a, _ in bad], [b for _, b in bad], s=16, marker="x", color="tab:red",
                               label=f"{mode} failed ({len(bad)})")
            ax.axvspan(0, case["duration_s"], color="0.92", zorder=0)
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            modes = case["modes"]
            ax.set_title(f"{kind}: app {key[0]}, {key[1]} ({case['duration_s']} s); failed keep-alive "
                         f"{modes['keepalive']['failed']}, new {modes['new']['failed']}", fontsize=9)
            ax.legend(fontsize=6, loc="upper left")
            if col == 0:
                ax.set_ylabel("latency ms")
    for ax in axes[-1]:
        ax.set_xlabel("seconds since the disruption started (grey: until the Deployment settled)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _main() -> int:
    """``python -m bench.lossless_node [--quick]``: the benchmark alone, result JSON on stdout."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bench.lossless_node")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = run(args.quick, Path(tempfile.mkdtemp(prefix="lanes-lossless-")), None)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())

