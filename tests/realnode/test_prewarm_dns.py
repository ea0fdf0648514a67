"""``lanes-prewarm`` against real in-cluster DNS names and ports (issue #12.5), on the real node with its CoreDNS.

The node runs CoreDNS the way kubeadm does (devtools/realnode/coredns.py: ``kube-dns`` at a fixed ClusterIP, the
kubelet's ``clusterDNS``), with the ``log`` plugin on, so the facts asserted here are observable ones:

- what the prewarm printed (one line per target: ``ok``/``FAIL``, ``resolved=``, ``attempts=``; the summary line),
  its exit codes and restarts as the kubelet reports them, and when the app container started;
- which names the pod asked the cluster DNS for and what it answered (CoreDNS's query log, by the pod's IP): a
  short name walks the pod's resolv.conf search list, a missing one is asked again on every attempt (nothing
  caches the miss), a name that appears later resolves as soon as its Service exists;
- that each name resolved to its Service's ClusterIP, which only the cluster DNS knows.

The target spec takes numeric ports only (``tcp://host:port``): named ports exist here as the Services'
``targetPort`` names, which kube-proxy resolves; the prewarm never sees them.

Pods whose prewarm must wait out the 60 s default deadline are created by the module fixture, so those waits run
alongside the other tests.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devtools.controlplane.binaries import COREDNS_VERSION
from devtools.realnode import RealNode, chart
from devtools.realnode import coredns as dns_addon
from devtools.realnode.chart import InstalledLanes
from devtools.realnode.config import CLUSTER_DOMAIN
from tests.namespaces import make_namespace
from tests.realnode.pods import wait_for
from tests.realnode.workloads import app_container, log_lines, parse_k8s_time, pod

#: the prewarm deadline the chart's defaults give every pod (defaults.prewarmDeadline)
PREWARM_DEADLINE = 60.0
#: the API's timestamps are whole seconds
API_ROUNDING = 1.0

#: CoreDNS's log plugin, default format: ``[INFO] 10.88.0.7:40215 - 5501 "A IN web.ns.svc.cluster.local. udp 54
#: false 512" NOERROR qr,aa,rd 110 0.0002s``
_QUERY = re.compile(
    r'\[INFO\] (?P<ip>[0-9a-f.:\[\]]+?):\d+ - \d+ "(?P<type>\S+) IN (?P<name>\S+) (?P<proto>\w+) [^"]*" (?P<rcode>\w+) '
)


@dataclass(frozen=True)
class Query:
    at: float
    client: str
    qtype: str
    name: str
    rcode: str


@dataclass
class World:
    """The module's namespaces, Services and the long-running prewarm pods."""

    ns: str
    other: str
    cluster_ips: dict[str, str] = field(default_factory=dict)


def _service(name: str, port: int, target: str = "http") -> dict[str, Any]:
    """A ClusterIP Service to pods labelled ``app: name``, its targetPort by the container port's *name*."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": target}]},
    }


def _backend(name: str, image: str) -> dict[str, Any]:
    """The sample app as a plain pod (``lanes.io/inject: "false"``: a dependency, not the subject)."""
    body = pod(name, [app_container(image, readinessProbe={"httpGet": {"path": "/healthz", "port": "http"},
                                                             "periodSeconds": 1})])
    body["metadata"]["labels"]["lanes.io/inject"] = "false"
    return body


def _prewarmed(name: str, image: str, targets: list[str], policy: str) -> dict[str, Any]:
    return pod(
        name,
        [app_container(image)],
        annotations={"lanes.io/prewarm": ",".join(targets), "lanes.io/prewarm-policy": policy},
    )


def _init_status(p: client.V1Pod, name: str) -> client.V1ContainerStatus | None:
    return next((s for s in (p.status.init_container_statuses or []) if s.name == name), None)


def _app_status(p: client.V1Pod) -> client.V1ContainerStatus | None:
    return next((s for s in (p.status.container_statuses or []) if s.name == "app"), None)


def _prewarm_lines(node: RealNode, namespace: str, name: str) -> list[tuple[float, str]]:
    return log_lines(node, namespace, name, "lanes-prewarm")


def _result(lines: list[tuple[float, str]], target: str) -> str:
    """The last ``ok``/``FAIL`` line the prewarm printed for ``target``."""
    found = [text for _, text in lines if text.split()[1:2] == [target] and text.split()[0] in ("ok", "FAIL")]
    assert found, f"no line for {target}:\n" + "\n".join(t for _, t in lines)
    return found[-1]


def _field(line: str, key: str) -> str:
    match = re.search(rf"\b{key}=(\S+)", line)
    assert match, f"no {key}= in {line!r}"
    return match.group(1)


def _dns_pod(core: client.CoreV1Api) -> str:
    pods = core.list_namespaced_pod(dns_addon.NAMESPACE, label_selector="k8s-app=kube-dns").items
    running = [p for p in pods if p.status.phase == "Running"]
    assert running, "no running CoreDNS pod"
    return str(running[0].metadata.name)


def _queries(node: RealNode, core: client.CoreV1Api, client_ip: str | None = None) -> list[Query]:
    """CoreDNS's query log (all its restarts), optionally only what ``client_ip`` asked."""
    found = []
    for stamp, text in log_lines(node, dns_addon.NAMESPACE, _dns_pod(core), "coredns"):
        match = _QUERY.search(text)
        if match and (client_ip is None or match.group("ip").strip("[]") == client_ip):
            found.append(Query(stamp, match.group("ip"), match.group("type"), match.group("name"),
                               match.group("rcode")))
    return found


def _answers(queries: list[Query], name: str) -> list[str]:
    """The rcodes of the A queries for ``name`` (absolute, with the trailing dot), in order."""
    return [q.rcode for q in queries if q.qtype == "A" and q.name == name]


@pytest.fixture(scope="module")
def world(
    real_node: RealNode, node_k8s: client.ApiClient, lanes: InstalledLanes, cluster_dns: str
) -> Iterator[World]:
    """Two namespaces (``ns`` injecting, ``other`` plain), a backend + Service in each, and the two pods whose
    prewarm runs into the 60 s deadline (started first, so their wait overlaps the other tests)."""
    core = client.CoreV1Api(node_k8s)
    ns = make_namespace(node_k8s)
    chart.enable_namespace(real_node, ns)
    other = make_namespace(node_k8s)
    image = real_node.images["sample-app"]
    world = World(ns, other)
    # a name nobody ever creates (warn) and one whose Service the test creates after the first failed run (require)
    core.create_namespaced_pod(ns, _prewarmed("missing-warn", image, ["tcp://nothing-here:80"], "warn"))
    core.create_namespaced_pod(ns, _prewarmed("late-require", image, ["tcp://late:80"], "require"))
    for namespace, name, port in ((ns, "web", 80), (other, "peer", 8080)):
        core.create_namespaced_pod(namespace, _backend(name, image))
        created = core.create_namespaced_service(namespace, _service(name, port))
        world.cluster_ips[name] = created.spec.cluster_ip
    yield world
    for namespace in (ns, other):
        core.delete_namespace(namespace)


def _wait_backends(core: client.CoreV1Api, world: World) -> None:
    def ready() -> bool:
        for namespace, name in ((world.ns, "web"), (world.other, "peer")):
            p = core.read_namespaced_pod(name, namespace)
            if not any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []):
                return False
        return True

    wait_for("the backends Ready", ready, timeout=120)


def _wait_app_started(core: client.CoreV1Api, namespace: str, name: str, timeout: float) -> client.V1Pod:
    def started() -> client.V1Pod | None:
        p = core.read_namespaced_pod(name, namespace)
        app = _app_status(p)
        return p if app is not None and app.state.running is not None else None

    return wait_for(f"{namespace}/{name}'s app container running", started, timeout)


# -- the cluster DNS itself ------------------------------------------------------------------------------------

_LOOKUP = r"""
import json, random, socket, struct, time

def query(server, name, qtype=1):
    # one DNS question over UDP, as nslookup would ask it; returns (rcode, [IPv4 answers], seconds)
    ident = random.randrange(1 << 16)
    packet = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    packet += b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet += struct.pack(">HH", qtype, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    started = time.monotonic()
    sock.sendto(packet, (server, 53))
    data = sock.recv(4096)
    seconds = time.monotonic() - started
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    offset = 12
    for _ in range(qd):
        while data[offset] != 0:
            offset += data[offset] + 1
        offset += 5
    answers = []
    for _ in range(an):
        if data[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            while data[offset] != 0:
                offset += data[offset] + 1
            offset += 1
        rtype, _, _, length = struct.unpack(">HHIH", data[offset:offset + 10])
        offset += 10
        if rtype == 1:
            answers.append(socket.inet_ntoa(data[offset:offset + 4]))
        offset += length
    return {"rcode": flags & 0xF, "answers": answers, "seconds": round(seconds, 3)}

def lookup(name):
    try:
        return sorted({a[4][0] for a in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)})
    except socket.gaierror as error:
        return "error: " + str(error)

conf = open("/etc/resolv.conf").read()
server = [l.split()[1] for l in conf.splitlines() if l.startswith("nameserver")][0]
print(json.dumps({
    "resolv_conf": conf,
    "getaddrinfo": {n: lookup(n) for n in ("kubernetes.default", "kube-dns.kube-system", "no-such-service")},
    "udp": {
        "kubernetes.default.svc.cluster.local": query(server, "kubernetes.default.svc.cluster.local"),
        "no-such-service.default.svc.cluster.local": query(server, "no-such-service.default.svc.cluster.local"),
        "example.com": query(server, "example.com"),
    },
}))
"""


def _coredns_rss(node: RealNode) -> int:
    """Resident bytes of the node's CoreDNS process (found by name inside the run's cgroup tree)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() != "coredns":
                continue
            if node.cgroup_root not in Path(f"/proc/{entry}/cgroup").read_text():
                continue
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            continue
    return 0


def test_kube_dns_answers_a_plain_pod(
    real_node: RealNode, node_k8s: client.ApiClient, cluster_dns: str, sample_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A pod in a namespace without Lanes (dnsPolicy ClusterFirst, the default) gets the cluster DNS in its
    resolv.conf, resolves Service names through the search list, and asking kube-dns directly gives the Service's
    ClusterIP, NXDOMAIN for a missing Service and a prompt answer (no upstream: SERVFAIL) for a name outside the
    cluster. A DNS breakage shows up here as itself, not as a prewarm failure."""
    core = client.CoreV1Api(node_k8s)
    namespace = make_namespace(node_k8s)
    try:
        body = pod("lookup", [app_container(sample_image, command=["python3", "-c", _LOOKUP], ports=[])],
                   restartPolicy="Never")
        core.create_namespaced_pod(namespace, body)

        def finished() -> str | None:
            phase = core.read_namespaced_pod("lookup", namespace).status.phase
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait_for("the lookup pod to finish", finished, timeout=120)
        lines = [text for _, text in log_lines(real_node, namespace, "lookup", "app")]
        assert phase == "Succeeded", "\n".join(lines)
        report = json.loads(next(text for text in lines if text.startswith("{")))
    finally:
        core.delete_namespace(namespace)
    conf = report["resolv_conf"].split("\n")
    assert f"nameserver {cluster_dns}" in conf, report["resolv_conf"]
    search = next(line.split()[1:] for line in conf if line.startswith("search"))
    assert search[:3] == [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN], search
    kubernetes_ip = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert report["getaddrinfo"]["kubernetes.default"] == [kubernetes_ip], report
    assert report["getaddrinfo"]["kube-dns.kube-system"] == [cluster_dns], report
    assert str(report["getaddrinfo"]["no-such-service"]).startswith("error:"), report
    udp = report["udp"]
    assert udp["kubernetes.default.svc.cluster.local"]["rcode"] == 0, udp
    assert udp["kubernetes.default.svc.cluster.local"]["answers"] == [kubernetes_ip], udp
    assert udp["no-such-service.default.svc.cluster.local"]["rcode"] == 3, udp  # NXDOMAIN
    assert udp["example.com"]["rcode"] == 2, udp  # SERVFAIL: answered, not left to time out
    with capsys.disabled():
        print(f"\n[realnode] CoreDNS {COREDNS_VERSION}: resident {_coredns_rss(real_node) / 2**20:.0f} MiB; "
              f"answer times {[v['seconds'] for v in udp.values()]} s")


def test_coredns_is_the_pinned_custom_build(real_node: RealNode, cluster_dns: str) -> None:
    """The binary the node runs is hack/coredns at COREDNS_VERSION, with the plugins of the Corefile and no more
    than its wrapper imports (no cloud backends)."""
    binary = real_node.binary("coredns")
    version = real_node.run([str(binary), "-version"], timeout=30)
    assert f"CoreDNS-{COREDNS_VERSION.lstrip('v')}" in version.stdout, version.stdout + version.stderr
    plugins = set(real_node.run([str(binary), "-plugins"], timeout=30).stdout.split())
    assert {"kubernetes", "cache", "errors", "health", "ready", "log", "loop", "reload", "loadbalance"} <= plugins
    assert not plugins & {"route53", "azure", "clouddns", "etcd", "nomad"}, plugins


# -- prewarm against Service names ---------------------------------------------------------------------------


def test_prewarm_resolves_service_names_through_cluster_dns(
    real_node: RealNode, node_k8s: client.ApiClient, world: World
) -> None:
    """Short name (``svc:port``), ``svc.ns`` in another namespace, the full ``svc.ns.svc.cluster.local`` and an
    ``http://`` target all resolve through the cluster DNS to their Service's ClusterIP and connect through
    kube-proxy to the backend's named port; the pod's queries walk its resolv.conf search list."""
    core = client.CoreV1Api(node_k8s)
    _wait_backends(core, world)
    ns, other = world.ns, world.other
    targets = [
        "tcp://web:80",
        f"tcp://peer.{other}:8080",
        f"http://web.{ns}.svc.{CLUSTER_DOMAIN}/healthz#200",
        f"dns://peer.{other}.svc.{CLUSTER_DOMAIN}",
    ]
    core.create_namespaced_pod(ns, _prewarmed("names", real_node.images["sample-app"], targets, "require"))
    started = _wait_app_started(core, ns, "names", timeout=120)
    lines = _prewarm_lines(real_node, ns, "names")
    expected = [world.cluster_ips["web"], world.cluster_ips["peer"], world.cluster_ips["web"],
                world.cluster_ips["peer"]]
    for target, ip in zip(targets, expected, strict=True):
        line = _result(lines, target)
        assert line.split()[0] == "ok", line
        assert _field(line, "resolved") == ip, line
    assert _field(_result(lines, targets[2]), "status") == "200"
    status = _init_status(started, "lanes-prewarm")
    assert status is not None and status.restart_count == 0
    assert status.state.terminated.exit_code == 0
    # what the pod asked kube-dns: the search list, in order, until a name exists
    asked = _queries(real_node, core, started.status.pod_ip)
    # A Service created just before the pod may not be in CoreDNS's watch yet at the first question (seen once in
    # CI: NXDOMAIN, then NOERROR on prewarm's retry), so the names must end up answered, not answer first time.
    assert _answers(asked, f"web.{ns}.svc.{CLUSTER_DOMAIN}.")[-1:] == ["NOERROR"], asked
    assert _answers(asked, f"peer.{other}.{ns}.svc.{CLUSTER_DOMAIN}.")[:1] == ["NXDOMAIN"], asked
    assert _answers(asked, f"peer.{other}.svc.{CLUSTER_DOMAIN}.")[-1:] == ["NOERROR"], asked


def test_prewarm_require_waits_for_endpoints_that_appear_later(
    real_node: RealNode, node_k8s: client.ApiClient, world: World
) -> None:
    """The Service exists (its name resolves from the first attempt) but its only backend starts later: until then
    kube-proxy refuses connections to the ClusterIP. Under ``require`` the app starts only after the prewarm
    connected, within one run (no restart), having retried."""
    core = client.CoreV1Api(node_k8s)
    ns = world.ns
    cluster_ip = core.create_namespaced_service(ns, _service("slow", 80)).spec.cluster_ip
    image = real_node.images["sample-app"]
    core.create_namespaced_pod(ns, _prewarmed("endpoints-later", image, ["tcp://slow:80"], "require"))

    def prewarm_running() -> bool:
        status = _init_status(core.read_namespaced_pod("endpoints-later", ns), "lanes-prewarm")
        return bool(status and status.state.running)

    wait_for("the prewarm running", prewarm_running, timeout=90)
    time.sleep(3)  # a few refused attempts
    backend_created = time.time()
    core.create_namespaced_pod(ns, _backend("slow", image))
    started = _wait_app_started(core, ns, "endpoints-later", timeout=120)
    line = _result(_prewarm_lines(real_node, ns, "endpoints-later"), "tcp://slow:80")
    assert line.split()[0] == "ok" and _field(line, "resolved") == cluster_ip, line
    assert int(_field(line, "attempts")) > 1, f"connected at the first attempt, so this proved nothing: {line}"
    status = _init_status(started, "lanes-prewarm")
    assert status is not None and status.restart_count == 0 and status.state.terminated.exit_code == 0
    app = _app_status(started)
    assert parse_k8s_time(app.state.running.started_at) + API_ROUNDING >= backend_created
    # the name was never the problem: every answer for it was NOERROR
    answers = _answers(_queries(real_node, core, started.status.pod_ip), f"slow.{ns}.svc.{CLUSTER_DOMAIN}.")
    assert answers and set(answers) == {"NOERROR"}, answers


def test_prewarm_warn_starts_the_pod_when_a_name_does_not_exist(
    real_node: RealNode, node_k8s: client.ApiClient, world: World
) -> None:
    """``warn`` and a name no Service has: the prewarm asks the cluster DNS again on every attempt until its
    deadline (the miss is not cached), prints FAIL with the resolver's reason and ``starting anyway``, exits 0,
    and the app starts after it."""
    core = client.CoreV1Api(node_k8s)
    ns = world.ns
    started = _wait_app_started(core, ns, "missing-warn", timeout=PREWARM_DEADLINE + 90)
    lines = _prewarm_lines(real_node, ns, "missing-warn")
    line = _result(lines, "tcp://nothing-here:80")
    assert line.split()[0] == "FAIL" and "cannot resolve nothing-here" in line, line
    assert _field(line, "resolved") == "-", line
    attempts = int(_field(line, "attempts"))
    assert any("policy=warn: starting anyway" in text for _, text in lines), lines
    status = _init_status(started, "lanes-prewarm")
    assert status is not None and status.restart_count == 0 and status.state.terminated.exit_code == 0
    finished = parse_k8s_time(status.state.terminated.finished_at)
    assert parse_k8s_time(_app_status(started).state.running.started_at) + API_ROUNDING >= finished
    asked = _queries(real_node, core, started.status.pod_ip)
    misses = [q for q in asked if q.qtype == "A" and q.name == f"nothing-here.{ns}.svc.{CLUSTER_DOMAIN}."]
    assert {q.rcode for q in misses} == {"NXDOMAIN"}, misses
    assert len(misses) >= attempts > 1, (attempts, misses)
    assert misses[-1].at - misses[0].at > PREWARM_DEADLINE / 2, "asked only at the start of the deadline"


def test_prewarm_require_restarts_until_a_missing_name_appears(
    real_node: RealNode, node_k8s: client.ApiClient, world: World
) -> None:
    """``require`` on a Deployment-style pod (restartPolicy Always) and a name with no Service yet: the app does
    not start; at the deadline the prewarm exits 1 and the kubelet runs it again. Once the Service (and its
    backend) exist, the next run resolves the name to the new ClusterIP and the app starts."""
    core = client.CoreV1Api(node_k8s)
    ns = world.ns

    def failed_once() -> client.V1Pod | None:
        p = core.read_namespaced_pod("late-require", ns)
        status = _init_status(p, "lanes-prewarm")
        return p if status is not None and status.restart_count >= 1 else None

    waiting = wait_for("the prewarm's first failed run", failed_once, timeout=PREWARM_DEADLINE + 90)
    status = _init_status(waiting, "lanes-prewarm")
    assert status.last_state.terminated.exit_code == 1, status
    assert _app_status(waiting) is None or _app_status(waiting).state.running is None, "app started anyway"
    first_run = _prewarm_lines(real_node, ns, "late-require")
    line = _result(first_run, "tcp://late:80")
    assert line.split()[0] == "FAIL" and "cannot resolve late" in line, line
    assert any("policy=require: failing the init container" in text for _, text in first_run), first_run
    created_at = time.time()
    cluster_ip = core.create_namespaced_service(ns, _service("late", 80)).spec.cluster_ip
    core.create_namespaced_pod(ns, _backend("late", real_node.images["sample-app"]))
    started = _wait_app_started(core, ns, "late-require", timeout=PREWARM_DEADLINE + 120)
    line = _result(_prewarm_lines(real_node, ns, "late-require"), "tcp://late:80")
    assert line.split()[0] == "ok" and _field(line, "resolved") == cluster_ip, line
    final = _init_status(started, "lanes-prewarm")
    assert final.state.terminated.exit_code == 0 and final.restart_count >= 1
    asked = _queries(real_node, core, started.status.pod_ip)
    name = f"late.{ns}.svc.{CLUSTER_DOMAIN}."
    before = {q.rcode for q in asked if q.name == name and q.qtype == "A" and q.at < created_at}
    after = [q.rcode for q in asked if q.name == name and q.qtype == "A" and q.at >= created_at]
    assert before == {"NXDOMAIN"}, asked
    assert after and after[-1] == "NOERROR", asked

