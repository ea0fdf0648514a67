"""The real node's cluster DNS: CoreDNS deployed the way kubeadm deploys it, from the image built here.

kubeadm's CoreDNS addon (cmd/kubeadm/app/phases/addons/dns/manifests.go at the pinned Kubernetes) is a ServiceAccount,
a ClusterRole + binding, the ``coredns`` ConfigMap holding the Corefile, the ``kube-dns`` Service at a fixed
ClusterIP and a Deployment. The same objects here, with these differences and why:

- the Corefile has no ``forward`` (and no ``prometheus``): the node's namespace has no way out, so there is nothing
  to forward to. A name outside ``cluster.local`` gets SERVFAIL at once from the server (no plugin serves it), never
  a timeout, and nothing reads the host's resolv.conf;
- it has ``log``: every query is printed, so a test can show which names a pod asked for and what came back;
- the ClusterRole grants only what the ``kubernetes`` plugin of this CoreDNS watches with ``pods insecure``:
  services, namespaces and endpointslices (kubeadm also grants endpoints and pods, which it no longer reads);
- one replica (one node), ``imagePullPolicy: Never`` (there is no registry).

:func:`deploy` only creates the objects (the node start does not wait for DNS); :func:`wait_ready` waits until the
``kube-dns`` Service has a ready endpoint, for whatever needs names.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import TYPE_CHECKING, Any

from devtools.realnode import config as cfg

if TYPE_CHECKING:
    from devtools.realnode.node import RealNode

NAMESPACE = "kube-system"
SERVICE = "kube-dns"
DEPLOYMENT = "coredns"
LABELS = {"k8s-app": "kube-dns"}


def corefile(domain: str = cfg.CLUSTER_DOMAIN) -> str:
    """kubeadm's Corefile without ``forward`` and ``prometheus``, with ``log`` (see the module docstring)."""
    return f""".:53 {{
    errors
    log
    health {{
       lameduck 5s
    }}
    ready
    kubernetes {domain} in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    cache 30 {{
       disable success {domain}
       disable denial {domain}
    }}
    loop
    reload
    loadbalance
}}
"""


def manifests(image: str, dns_ip: str = cfg.CLUSTER_DNS_IP, domain: str = cfg.CLUSTER_DOMAIN) -> list[dict[str, Any]]:
    """Every object of the addon, in the order they are applied (the Service first: its fixed ClusterIP must be
    taken before anything asks for a random one)."""
    meta = {"namespace": NAMESPACE}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "labels": {**LABELS, "kubernetes.io/name": "CoreDNS"}, **meta},
        "spec": {
            "clusterIP": dns_ip,
            "selector": LABELS,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ],
        },
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", **meta}}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:coredns"},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:coredns"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
        "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": NAMESPACE}],
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "coredns", **meta},
        "data": {"Corefile": corefile(domain)},
    }
    container = {
        "name": "coredns",
        "image": image,
        "imagePullPolicy": "Never",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
        "ports": [
            {"containerPort": 53, "name": "dns", "protocol": "UDP"},
            {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
            {"containerPort": 8080, "name": "liveness-probe", "protocol": "TCP"},
            {"containerPort": 8181, "name": "readiness-probe", "protocol": "TCP"},
        ],
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "liveness-probe", "scheme": "HTTP"},
            "initialDelaySeconds": 60,
            "timeoutSeconds": 5,
            "successThreshold": 1,
            "failureThreshold": 5,
        },
        # kubeadm probes every 10 s (the default); 1 s here so a fresh node's DNS is ready within a second of
        # CoreDNS being ready, not up to 10 s later
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "readiness-probe", "scheme": "HTTP"},
            "periodSeconds": 1,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "labels": LABELS, **meta},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [container],
                    # the kubelet's resolv.conf (a file of the run), never the cluster DNS itself
                    "dnsPolicy": "Default",
                    "volumes": [
                        {
                            "name": "config-volume",
                            "configMap": {"name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]},
                        }
                    ],
                },
            },
        },
    }
    return [service, account, role, binding, config_map, deployment]


def deploy(node: RealNode) -> subprocess.Popen[str]:
    """Start creating the addon's objects (``kubectl apply`` in the node's namespace) and return at once: the node
    start does not wait for it. :func:`wait_ready` collects the process (and fails with its stderr)."""
    image = node.images["coredns"]
    path = node.workdir / "coredns.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests(image)}, indent=2))
    command = [str(node.binary("kubectl")), f"--kubeconfig={node.ns_kubeconfig}", "apply", "-f", str(path)]
    return subprocess.Popen(
        node.nsenter(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node.environment()
    )


def _ready_endpoints(node: RealNode) -> int:
    result = node.kubectl(
        "get", "endpointslices", "-n", NAMESPACE, "-l", f"kubernetes.io/service-name={SERVICE}", "-o", "json",
        check=False,
    )
    if result.returncode != 0:
        return 0
    slices = json.loads(result.stdout).get("items", [])
    return sum(
        1 for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready") is True
    )


def wait_ready(node: RealNode, applying: subprocess.Popen[str] | None, timeout: float = 120) -> float:
    """Wait for ``applying`` (what :func:`deploy` started), then until ``kube-dns`` has a ready endpoint (CoreDNS
    answers and has synced with the API server); returns the seconds waited. Raises RealNodeError with kubectl's
    error, or the pod's state and logs when it does not come up."""
    from devtools.realnode.node import RealNodeError

    started = time.monotonic()
    if applying is not None:
        _, err = applying.communicate(timeout=timeout)
        if applying.returncode != 0:
            raise RealNodeError(f"kubectl apply of the cluster DNS failed (exit {applying.returncode}): {err.strip()}")
    # one watching process until the pod is Ready, then the EndpointSlice (the controller writes it just after)
    node.kubectl(
        "rollout", "status", "-n", NAMESPACE, f"deployment/{DEPLOYMENT}", f"--timeout={int(timeout)}s",
        check=False, timeout=timeout + 30,
    )
    while _ready_endpoints(node) == 0:
        if time.monotonic() - started > timeout:
            pods = node.kubectl("get", "pods", "-n", NAMESPACE, "-l", "k8s-app=kube-dns", "-o", "wide", check=False)
            logs = node.kubectl("logs", "-n", NAMESPACE, f"deployment/{DEPLOYMENT}", "--tail=30", check=False)
            raise RealNodeError(
                f"cluster DNS (kube-system/{DEPLOYMENT}) not ready after {timeout:.0f}s\n"
                f"{pods.stdout}{pods.stderr}\n{logs.stdout}{logs.stderr}"
            )
        time.sleep(0.3)
    return time.monotonic() - started
