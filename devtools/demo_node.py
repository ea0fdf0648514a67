"""``make demo`` on a real node: the chart installed with helm, the examples as real pods, a rolling restart under
load, and failed requests plain vs Lanes at the end.

A real kubelet, containerd, CNI bridge and kube-proxy (devtools/realnode, private network + mount namespaces),
charts/lanes installed with helm from the images built here (devtools/images), then what a user does: two
namespaces get ``examples/`` (services a -> b -> c, gray versions of a and c), one left plain and one labelled
``lanes=enabled`` with ``kubectl label``. The examples name an image that is not on this machine, so they are
rewritten in code (:func:`node_examples`, never a second copy of the YAML) to run the sample app
(examples/sample-app) with its ``CALL`` chain following the examples' own ``lanes.io/prewarm`` dependencies.

The load, the restart and the counting are the real-node lossless benchmark's (bench/lossless_node.py): its load
client pod sends a constant rate to Service ``a`` through kube-proxy, half on keep-alive connections, half on a
new connection per request, and a 200 whose chain shows a failed hop counts as failed too. Each namespace then
gets the same ``kubectl rollout restart`` of every Deployment under the same load, one after the other.
Everything is torn down on exit, on an error and on Ctrl-C (``RealNode.stop``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import lossless_node as bench
from bench.common import BenchError
from devtools.demo import DemoError, load_examples, render_table, say
from devtools.realnode import RealNode, RealNodeError, RealNodeUnavailable, chart
from helper.specs import parse_targets
from webhook.contract import names

PLAIN, LANES, LOAD = "demo-plain", "demo-lanes", "demo-load"
#: the pods of every example Deployment carry it
PART_OF = "app.kubernetes.io/part-of=lanes-demo"
#: the examples' apps stop gracefully (the sample app's default), the case the benchmark claims for both modes
APP_SIGTERM = "graceful"
EDGE = "a"
#: what the rolling restart restarts: the edge and the middle of the chain every request crosses (a -> b -> c).
#: All ten pods at once is the same story but starves 2 shared cores, and a timeout then says nothing about Lanes
RESTART = ("a", "b")
#: small enough for 2 shared cores with 20 app pods, large enough that a lost endpoint shows up
PARAMS: dict[str, Any] = {"rate_per_mode": 10.0, "connections": 4, "steady_s": 3.0, "tail_s": 3.0}
#: seconds per request (the benchmark's is 2 s with one hop; each hop of the chain is a new connection)
TIMEOUT = 5.0


# --- pure: the examples rewritten for the node -------------------------------------------------------------------


def node_examples(documents: list[dict[str, Any]], image: str, cluster_ips: dict[str, str]) -> list[dict[str, Any]]:
    """``examples/`` for the real node, unchanged but for what cannot run here.

    Each Deployment's ``app`` container runs ``image`` (the sample app, never pulled) instead of agnhost, with
    ``NAME`` = its app, ``SIGTERM`` = :data:`APP_SIGTERM`, and ``CALL`` = the services its ``lanes.io/prewarm``
    annotation names (a -> b -> c: a request to a crosses the chain). The node runs no cluster DNS, so service
    names in ``CALL`` and in the prewarm annotation become their ClusterIPs (``cluster_ips``: service -> IP).
    """
    out = []
    for document in documents:
        document = copy.deepcopy(document)
        if document.get("kind") == "Deployment":
            template = document["spec"]["template"]
            annotations = template["metadata"].setdefault("annotations", {})
            spec = annotations.get(names.ANN_PREWARM, "")
            targets = parse_targets(spec) if spec.strip() else ()
            calls, prewarm = [], []
            for target in targets:
                if target.kind != "tcp":  # the examples name tcp:// dependencies only; others stay as written
                    prewarm.append(target.raw)
                    continue
                host = cluster_ips.get(target.host, target.host)
                prewarm.append(f"tcp://{host}:{target.port}")
                calls.append(f"http://{host}:{target.port}/")
            if prewarm:
                annotations[names.ANN_PREWARM] = ",".join(prewarm)
            app = template["metadata"]["labels"]["app.kubernetes.io/name"]
            for container in template["spec"]["containers"]:
                if container["name"] != "app":
                    continue
                container.update(image=image, imagePullPolicy="Never")
                container.pop("args", None)
                container.pop("command", None)
                env = [e for e in container.get("env", []) if e["name"] not in ("NAME", "SIGTERM", "CALL")]
                env += [{"name": "NAME", "value": app}, {"name": "SIGTERM", "value": APP_SIGTERM}]
                if calls:
                    env.append({"name": "CALL", "value": ",".join(calls)})
                container["env"] = env
        out.append(document)
    return out


def workload(documents: list[dict[str, Any]]) -> bench.Workload:
    """The examples as the benchmark's workload: the :data:`RESTART` Deployments restarted at once; settled when
    all the examples' pods are Ready and none is terminating."""
    deployments = [d for d in documents if d.get("kind") == "Deployment"]
    edge_port = next(
        p["port"] for d in documents if d.get("kind") == "Service" and d["metadata"]["name"] == EDGE
        for p in d["spec"]["ports"]
    )
    return bench.Workload(
        deployments=tuple(d["metadata"]["name"] for d in deployments if d["metadata"]["name"] in RESTART),
        label=PART_OF,
        replicas=sum(int(d["spec"].get("replicas", 1)) for d in deployments),
        port=int(edge_port),
        timeout=TIMEOUT,
    )


def failed_line(cases: dict[str, dict[str, Any]]) -> str:
    """The demo's last line: failed requests of each namespace's restart, in total and per connection mode."""

    def pair(kind: str, mode: str) -> str:
        m = cases[kind]["modes"][mode]
        return f"{m['failed']}/{m['requests']}"

    total = {k: (sum(m["failed"] for m in c["modes"].values()), sum(m["requests"] for m in c["modes"].values()))
             for k, c in cases.items()}
    return (
        f"failed requests plain vs Lanes: plain {total['plain'][0]} of {total['plain'][1]}, "
        f"Lanes {total['lanes'][0]} of {total['lanes'][1]} "
        f"(new connections: plain {pair('plain', 'new')}, Lanes {pair('lanes', 'new')}; "
        f"keep-alive: plain {pair('plain', 'keepalive')}, Lanes {pair('lanes', 'keepalive')})"
    )


# --- the run ------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def step(what: str, about: str) -> Iterator[None]:
    """Say what a step does and how long it usually takes; then how long it took."""
    say(f"{what} (usually {about})")
    started = time.monotonic()
    yield
    say(f"  ... {time.monotonic() - started:.0f}s")


def _interrupt(*_: object) -> None:
    """SIGTERM tears the node down like Ctrl-C does."""
    raise KeyboardInterrupt


def run(keep: bool, examples: Path) -> int:
    """Start a node, run the demo on it, stop it whatever happens (an error, Ctrl-C, SIGTERM); with ``keep``, keep
    it until Ctrl-C after the demo. Failures come back as DemoError."""
    documents = load_examples(examples)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    node = RealNode()
    try:
        with step("starting a real node: kubelet, containerd, CNI and kube-proxy with their own control plane, in "
                  "private network + mount namespaces", "10-40 s warm; the first run builds them: minutes"):
            node.start()
        say(f"node Ready in {node.start_seconds:.0f}s (supervisor pid {node.pid}; work dir {node.workdir})")
        _demo(node, documents)
        if keep:
            say(f"kept running: export KUBECONFIG={node.kubeconfig}  (Ctrl-C stops and cleans up)")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        return 0
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except RealNodeUnavailable as error:
        raise DemoError(f"no real node: {error} (`--kwok` runs the fake-node demo)") from error
    except (BenchError, RealNodeError) as error:
        raise DemoError(str(error)) from error
    finally:
        say("stopping the real node and removing everything it made (a few seconds)")
        node.stop()
        signal.signal(signal.SIGTERM, previous)
        say("stopped and cleaned up" + (f" ({node.workdir} removed)" if node.workdir != Path(".") else ""))


def _demo(node: RealNode, documents: list[dict[str, Any]]) -> None:
    with step("helm install charts/lanes from the images built here (webhook pods behind their Service, the "
              "controller as their native sidecar, its own certificates)", "10-40 s"):
        installed = chart.install(node)
    say(f"chart installed and injecting in {installed.install_seconds:.0f}s")
    cluster = bench.Cluster(node)
    image = node.images["sample-app"]
    for namespace in (PLAIN, LANES, LOAD):
        cluster.kubectl("create", "namespace", namespace)
    chart.enable_namespace(node, LANES)
    say(f"namespaces {PLAIN} (plain Kubernetes) and {LANES}: `kubectl label namespace {LANES} lanes=enabled`")
    services = [d for d in documents if d.get("kind") == "Service"]
    work = workload(documents)
    hosts: dict[str, str] = {}
    with step(f"applying examples/ to both namespaces as real pods of {image} (a -> b -> c with CALL; the node "
              "has no cluster DNS, so service names become ClusterIPs), and the benchmark's load client pod",
              "40-90 s on 2 cores"):
        cluster.apply(LOAD, bench.client_objects(image))
        for namespace in (PLAIN, LANES):
            cluster.apply(namespace, services)
            ips = {s["metadata"]["name"]: cluster.core.read_namespaced_service(s["metadata"]["name"], namespace)
                   .spec.cluster_ip for s in services}
            hosts[namespace] = ips[EDGE]
            cluster.apply(namespace, [d for d in node_examples(documents, image, ips) if d.get("kind") != "Service"])
        cluster.wait_settled(LOAD, 1, timeout=180, label="app=load-client")
        for namespace in (PLAIN, LANES):
            cluster.wait_settled(namespace, work.replicas, timeout=240, label=work.label)
    bench.check_injected(cluster, LANES)
    pods = json.loads(cluster.kubectl("get", "pods", "-n", LANES, "-o", "json"))["items"]
    print()
    print(render_table(sorted(pods, key=lambda p: p["metadata"]["name"])))
    print()
    say(f"{LANES}: {len(pods)} real pods, each with lanes-agent as a native sidecar, a lossless preStop and the "
        f"lanes.io/registered gate; the same pods in {PLAIN} run without them")
    say(f"one request to Service {EDGE} in {LANES}: {_chain(node, hosts[LANES], work.port)}")
    load = bench.LoadClient(cluster, LOAD)
    cases: dict[str, dict[str, Any]] = {}
    for kind, namespace in (("plain", PLAIN), ("lanes", LANES)):
        about = "10-30 s" if kind == "plain" else "20-50 s: new pods wait for their register-delay, old ones drain"
        with step(f"{namespace}: `kubectl rollout restart` of {', '.join(work.deployments)} under "
                  f"{PARAMS['rate_per_mode']:.0f} req/s keep-alive + {PARAMS['rate_per_mode']:.0f} req/s new "
                  f"connections to Service {EDGE} ({work.timeout:.0f} s timeout; the benchmark's load client pod)",
                  about):
            cases[kind] = bench.run_case(cluster, load, namespace, kind, APP_SIGTERM, "rollout", hosts[namespace],
                                         PARAMS, work)
        errors = {m: v["errors"] for m, v in cases[kind]["modes"].items() if v["errors"]}
        if errors:
            say(f"  {namespace} failures by kind: {errors}")
    say(failed_line(cases))


def _chain(node: RealNode, host: str, port: int) -> str:
    """Which pods one request crossed, ``a (pod) -> b (pod) -> c (pod)``, through a loopback forward."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", node.forward(host, port), timeout=10)
    try:
        connection.request("GET", "/")
        answer: Any = json.loads(connection.getresponse().read())
    except (OSError, ValueError, http.client.HTTPException) as error:
        return f"failed: {error}"
    finally:
        connection.close()
    hops = []
    while isinstance(answer, dict):
        if "error" in answer:
            hops.append(f"error: {answer['error']}")
            break
        hops.append(f"{answer.get('service')} ({answer.get('pod')}, lane {answer.get('lane')})")
        answer = (answer.get("calls") or [None])[0]
    return " -> ".join(hops)


__all__ = ["failed_line", "node_examples", "run", "workload"]
