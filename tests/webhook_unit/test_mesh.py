"""Pods under a service mesh (issues #11.4 and #12.4): the mesh's proxy is never taken for the app, mesh gateway
pods are left to the mesh, and the agent's port is kept out of the mesh's inbound capture."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.webhook_unit.factories import config, container, env_of, init_named, pod
from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults
from webhook.injection.admit import admit_pod
from webhook.injection.mutation import mutate, skip_reason
from webhook.injection.resolve import default_app_port, resolve

DEFAULTS = ClusterDefaults()
ISTIO_EXCLUDE = "traffic.sidecar.istio.io/excludeInboundPorts"
LINKERD_SKIP = "config.linkerd.io/skip-inbound-ports"


def istio_proxy(**extra: Any) -> dict[str, Any]:
    return {
        "name": "istio-proxy",
        "image": "docker.io/istio/proxyv2:1.24.0",
        "args": ["proxy", "sidecar"],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}},
        **extra,
    }


def app(**extra: Any) -> dict[str, Any]:
    return container("web", port=8080, readinessProbe={"httpGet": {"path": "/ready", "port": 8080}}, **extra)


def agent_env(subject: dict[str, Any], **values: Any) -> dict[str, dict[str, Any]]:
    resolution = resolve(subject, DEFAULTS)
    cfg = resolution.config.model_copy(update=values) if values else resolution.config
    out = mutate(subject, cfg).pod
    agent = init_named(out, names.CONTAINER_AGENT)
    assert agent is not None
    return env_of(agent)


# --- #11.4: the proxy is not the app ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "proxy",
    [
        istio_proxy(),
        {"name": "linkerd-proxy", "image": "cr.l5d.io/linkerd/proxy", "ports": [{"containerPort": 4191}]},
        {"name": "consul-dataplane", "image": "hashicorp/consul-dataplane", "ports": [{"containerPort": 20000}]},
        {"name": "kuma-sidecar", "image": "kumahq/kuma-dp", "ports": [{"containerPort": 9901}]},
    ],
    ids=lambda c: c["name"],
)
def test_mesh_proxy_first_is_skipped_for_the_default_app_port_and_probe(proxy: dict[str, Any]) -> None:
    subject = pod(proxy, app())
    assert default_app_port(subject) == 8080
    env = agent_env(subject)
    assert env[names.ENV_APP_PORT]["value"] == "8080"
    assert env[names.ENV_APP_READY_PATH]["value"] == "/ready"


def test_istio_rewritten_probe_is_handed_over_as_the_app_wrote_it() -> None:
    """Istio's injector ran first: the app's probe now points at pilot-agent (15020) and the original is in
    ``ISTIO_KUBE_APP_PROBERS``; the agent must probe the app, not the proxy."""
    probers = {"/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
                                          "timeoutSeconds": 1}}
    proxy = istio_proxy(env=[{"name": "ISTIO_KUBE_APP_PROBERS", "value": json.dumps(probers)}])
    web = container("web", port=8080, readinessProbe={"httpGet": {"path": "/app-health/web/readyz", "port": 15020}})
    env = agent_env(pod(proxy, web))
    assert env[names.ENV_APP_PORT]["value"] == "8080"
    assert env[names.ENV_APP_READY_PATH]["value"] == "/ready"


def test_istio_native_sidecar_proxy_in_init_containers_is_not_the_app() -> None:
    proxy = istio_proxy(restartPolicy="Always")
    subject = pod(app(), initContainers=[{"name": "istio-init", "image": "istio/proxyv2"}, proxy])
    assert default_app_port(subject) == 8080


@pytest.mark.parametrize("proxy_name", ["istio-proxy", "linkerd-proxy"])
def test_mesh_gateway_pod_with_only_a_proxy_is_skipped_with_a_warning(proxy_name: str) -> None:
    gateway = pod(istio_proxy(name=proxy_name))
    assert skip_reason(gateway) == "mesh-proxy-only"
    result = admit_pod(gateway, "shop", DEFAULTS, None)
    assert result.patch == [] and not result.injected
    assert result.skip_reason == "mesh-proxy-only"
    assert any(proxy_name in w and "not injected" in w for w in result.warnings), result.warnings


# --- #12.4: the agent's port is kept out of the mesh's inbound capture ------------------------------------------


def annotations_of(subject: dict[str, Any], **values: Any) -> tuple[dict[str, Any], list[str]]:
    result = mutate(subject, config(**values))
    assert result.skipped is None
    return result.pod["metadata"]["annotations"], result.warnings


def test_agent_port_is_excluded_from_istio_and_linkerd_inbound_capture() -> None:
    annotations, _ = annotations_of(pod())
    assert annotations[ISTIO_EXCLUDE] == "15400"
    # the annotation replaces Linkerd's own default (its Galera ports), so that default is kept in it
    assert annotations[LINKERD_SKIP] == "4567,4568,15400"


def test_user_exclusions_are_merged_without_duplicates() -> None:
    subject = pod(annotations={ISTIO_EXCLUDE: "9090, 9091", LINKERD_SKIP: "15400,25"})
    annotations, _ = annotations_of(subject)
    assert annotations[ISTIO_EXCLUDE] == "9090, 9091,15400"
    assert annotations[LINKERD_SKIP] == "15400,25"


def test_linkerd_port_ranges_covering_the_agent_port_are_respected() -> None:
    annotations, _ = annotations_of(pod(annotations={LINKERD_SKIP: "15000-16000"}))
    assert annotations[LINKERD_SKIP] == "15000-16000"


def test_agent_port_setting_is_what_is_excluded() -> None:
    annotations, _ = annotations_of(pod(), agent_port=16000)
    assert annotations[ISTIO_EXCLUDE] == "16000"


def test_minimal_mode_adds_no_exclusion() -> None:
    annotations, _ = annotations_of(pod(), agent=False)
    assert ISTIO_EXCLUDE not in annotations and LINKERD_SKIP not in annotations


def test_exclusions_are_idempotent_and_follow_a_changed_port() -> None:
    first = mutate(pod(annotations={ISTIO_EXCLUDE: "9090"}), config()).pod
    again = mutate(first, config())
    assert again.skipped == "already-injected"
    moved = mutate(first, config(agent_port=16000)).pod["metadata"]["annotations"]
    assert moved[ISTIO_EXCLUDE] == "9090,16000"
    minimal = mutate(first, config(agent=False)).pod["metadata"]["annotations"]
    assert minimal[ISTIO_EXCLUDE] == "9090"


def test_istio_init_already_configured_without_the_port_is_reported() -> None:
    """Istio's injector ran before Lanes and wrote iptables arguments: the annotation comes too late for
    istio-init (istio-cni reads it later and is fine)."""
    subject = pod(app(), istio_proxy(), initContainers=[{"name": "istio-init", "image": "istio/proxyv2"}])
    _, warnings = annotations_of(subject)
    assert any("istio-init" in w and ISTIO_EXCLUDE in w for w in warnings), warnings
    _, quiet = annotations_of(pod(app(), istio_proxy(), annotations={ISTIO_EXCLUDE: "15400"},
                                  initContainers=[{"name": "istio-init", "image": "istio/proxyv2"}]))
    assert not any("istio-init" in w for w in quiet), quiet
