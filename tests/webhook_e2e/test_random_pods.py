"""Property test through the real API server: random valid pods, mutated by the real webhook.

For every generated pod (random containers, ports, env, probes, user hooks, and random lanes.io/* annotations,
valid or not), a server-side dry-run create in an enabled namespace must be accepted by kube-apiserver's own
validation after Lanes mutated it, and running the mutation again on what the API server returned must change
nothing (idempotency on a pod carrying all of the API server's defaulting).
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from tests.webhook_e2e.conftest import HELPER_IMAGE, OWN_NAMESPACE, WebhookServer
from webhook.contract.defaults import ClusterDefaults
from webhook.injection.admit import admit_pod

_LOWER = string.ascii_lowercase
dns_label = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")
port_name = st.from_regex(r"\A[a-z]{1,4}(-[a-z0-9]{1,4})?\Z")
env_name = st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,15}\Z")
env_value = st.text(alphabet=string.printable + "é漢", max_size=20)

ANNOTATION_VALUES: dict[str, st.SearchStrategy[str]] = {
    "lanes.io/lane": st.sampled_from(["gray", "base", "canary-1", "Bad_Lane", ""]),
    "lanes.io/app": st.sampled_from(["shop", "a-b", "UPPER"]),
    "lanes.io/warmup": st.sampled_from(["90s", "2m", "0", "1h30m", "-5s", "soon"]),
    "lanes.io/warmup-curve": st.sampled_from(["linear", "k=2", "aggression=1.5,min=5%", "cubic??"]),
    "lanes.io/warmup-requests": st.sampled_from(["GET /api/items x50 c4", "/healthz x5", "PUT"]),
    "lanes.io/register-delay": st.sampled_from(["10s", "500ms", "never"]),
    "lanes.io/prewarm": st.sampled_from(["tcp://db:5432", "https://auth.shop.svc/healthz#200", "ftp://x"]),
    "lanes.io/prewarm-policy": st.sampled_from(["warn", "require", "maybe"]),
    "lanes.io/drain": st.sampled_from(["20s", "0", "45", "99999h"]),
    "lanes.io/offline-notify": st.sampled_from(["http://registry.shop:8080/offline", "not a url"]),
    "lanes.io/port": st.sampled_from(["8080", "http", "nope", "70000"]),
    "lanes.io/agent": st.sampled_from(["true", "false", "yes-please"]),
}


@st.composite
def containers(draw: st.DrawFn, names: list[str]) -> list[dict[str, Any]]:
    result = []
    for name in names:
        ports = draw(st.lists(st.integers(1, 65535), max_size=2, unique=True))
        port_names = draw(st.lists(port_name, min_size=len(ports), max_size=len(ports), unique=True))
        container: dict[str, Any] = {"name": name, "image": f"registry.example/{name}:1"}
        if ports:
            container["ports"] = [{"name": n, "containerPort": p} for n, p in zip(port_names, ports, strict=True)]
        env = draw(st.lists(st.tuples(env_name, env_value), max_size=4, unique_by=lambda t: t[0]))
        if draw(st.booleans()):
            env.append(("OTEL_RESOURCE_ATTRIBUTES", "service.name=x"))
        if env:
            container["env"] = [{"name": n, "value": v} for n, v in dict(env).items()]
        if ports and draw(st.booleans()):
            port: int | str = draw(st.sampled_from([ports[0], port_names[0]]))
            container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": port}}
        if draw(st.booleans()):
            container["lifecycle"] = {"preStop": {"exec": {"command": ["sh", "-c", "sleep 1"]}}}
        result.append(container)
    return result


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(dns_label, min_size=1, max_size=3, unique=True))
    names = [n for n in names if not n.startswith("lanes-")] or ["app"]
    init_names = draw(st.lists(dns_label.filter(lambda n: n not in names), max_size=1, unique=True))
    init_names = [n for n in init_names if not n.startswith("lanes-")]
    keys = draw(st.lists(st.sampled_from(sorted(ANNOTATION_VALUES)), max_size=5, unique=True))
    annotations = {k: draw(ANNOTATION_VALUES[k]) for k in keys}
    if draw(st.booleans()):
        annotations["lanes.io/drian"] = "10s"  # a typo: warned about, never fatal
    spec: dict[str, Any] = {"containers": draw(containers(names))}
    if init_names:
        spec["initContainers"] = [{"name": n, "image": "registry.example/init:1"} for n in init_names]
    grace = draw(st.none() | st.integers(0, 120))
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    labels = {"app": draw(dns_label)} if draw(st.booleans()) else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": draw(dns_label), "labels": labels, "annotations": annotations},
        "spec": spec,
    }


DEFAULTS = ClusterDefaults(own_namespace=OWN_NAMESPACE, helper_image=HELPER_IMAGE)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pod=pods())
def test_random_pods_are_valid_after_mutation_and_idempotent(
    webhook_server: WebhookServer, k8s: client.ApiClient, enabled_namespace: str, pod: dict[str, Any]
) -> None:
    response = client.CoreV1Api(k8s).create_namespaced_pod(
        enabled_namespace, pod, dry_run="All", _preload_content=False
    )
    created = json.loads(response.data)
    assert response.status == 201
    assert "lanes.io/status" in created["metadata"]["annotations"]
    init_names = [c["name"] for c in created["spec"].get("initContainers", [])]
    if pod["metadata"]["annotations"].get("lanes.io/agent") != "false":
        assert "lanes-agent" in init_names
    again = admit_pod(created, enabled_namespace, DEFAULTS, None)
    assert again.patch == [], again.patch
