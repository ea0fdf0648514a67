"""Every label, annotation, condition, container, port and environment variable name Lanes uses.

This module is the product contract (docs/reference.md) in code: the mutation, the resolution,
the validating path, the CLI and the tests import names from here, so a rename happens in one place. The helper
reads the same environment variable names from ``helper/env.py``; the two are kept equal by a unit test.
"""

from __future__ import annotations

from typing import Any, Final

PREFIX: Final = "lanes.io/"

# --- namespace opt-in (matched by the webhook's namespaceSelector, not read by the core) ---------------------
NAMESPACE_ENABLE_LABEL: Final = "lanes"
NAMESPACE_ENABLE_VALUE: Final = "enabled"

# --- labels ---------------------------------------------------------------------------------------------------
LABEL_INJECT: Final = "lanes.io/inject"  # pod label; "false" opts one workload out
LABEL_LANE: Final = "lanes.io/lane"  # written on every injected pod; also read from the namespace as a label
LABEL_APP: Final = "lanes.io/app"

# Well-known labels the app name defaults to, in order.
LABEL_K8S_NAME: Final = "app.kubernetes.io/name"
LABEL_APP_LEGACY: Final = "app"
LABEL_POD_TEMPLATE_HASH: Final = "pod-template-hash"  # set by the Deployment controller on RS and pods

# --- annotations (user settings) -----------------------------------------------------------------------------
ANN_LANE: Final = "lanes.io/lane"
ANN_APP: Final = "lanes.io/app"
ANN_WARMUP: Final = "lanes.io/warmup"
ANN_WARMUP_CURVE: Final = "lanes.io/warmup-curve"
ANN_WARMUP_REQUESTS: Final = "lanes.io/warmup-requests"
ANN_REGISTER_DELAY: Final = "lanes.io/register-delay"
ANN_PREWARM: Final = "lanes.io/prewarm"
ANN_PREWARM_POLICY: Final = "lanes.io/prewarm-policy"
ANN_DRAIN: Final = "lanes.io/drain"
ANN_OFFLINE_NOTIFY: Final = "lanes.io/offline-notify"
ANN_PORT: Final = "lanes.io/port"
ANN_AGENT: Final = "lanes.io/agent"
ANN_REGISTRY: Final = "lanes.io/registry"
ANN_REGISTRY_SECRET: Final = "lanes.io/registry-secret"

# --- annotation written by the webhook ------------------------------------------------------------------------
ANN_STATUS: Final = "lanes.io/status"


def __getattr__(name: str) -> Any:
    """``SETTING_ANNOTATIONS`` (annotations a user sets) and ``KNOWN_ANNOTATIONS`` (every ``lanes.io/*`` key that is
    not a typo) are derived from the declarations in webhook/contract/settings.py, which import this module."""
    if name in ("SETTING_ANNOTATIONS", "KNOWN_ANNOTATIONS"):
        from webhook.contract import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- pod condition (readiness gate) -------------------------------------------------------------------------
CONDITION_REGISTERED: Final = "lanes.io/registered"

# --- injected containers and ports ----------------------------------------------------------------------------
CONTAINER_PREWARM: Final = "lanes-prewarm"
CONTAINER_AGENT: Final = "lanes-agent"
INJECTED_CONTAINERS: Final = frozenset((CONTAINER_PREWARM, CONTAINER_AGENT))
AGENT_PORT_NAME: Final = "lanes-agent"  # IANA_SVC_NAME: <= 15 characters

AGENT_PATH_READY: Final = "/ready"
AGENT_PATH_APP_READY: Final = "/ready/app"  # the readiness probe given to an app container without one
AGENT_PATH_PRESTOP: Final = "/prestop"
AGENT_PATH_HEALTHZ: Final = "/healthz"
AGENT_PATH_METRICS: Final = "/metrics"

NONROOT_UID: Final = 65532  # the "nonroot" user of distroless images; the helper image's numeric USER

# --- service meshes and other proxy sidecars (never the app; webhook/injection/mesh.py) -------------------------
MESH_PROXY_CONTAINERS: Final = frozenset(
    (
        "istio-proxy",  # Istio (sidecar and gateway pods; a native sidecar in initContainers since 1.19)
        "linkerd-proxy",  # Linkerd 2
        "consul-dataplane",  # Consul on Kubernetes >= 1.0
        "envoy-sidecar",  # Consul on Kubernetes < 1.0
        "consul-sidecar",  # Consul on Kubernetes < 1.0 (lifecycle sidecar)
        "kuma-sidecar",  # Kuma and Kong Mesh
        "nginx-mesh-sidecar",  # NGINX Service Mesh
        "daprd",  # Dapr's sidecar: not a mesh, but never the app either
    )
)
"""Names the meshes' injectors give their proxy container: skipped when choosing the app container and port."""
ISTIO_PROXY: Final = "istio-proxy"
ISTIO_KUBE_APP_PROBERS: Final = "ISTIO_KUBE_APP_PROBERS"
"""Env of istio-proxy holding the app probes Istio rewrote to pilot-agent: ``{"/app-health/<c>/readyz": probe}``."""
ISTIO_EXCLUDE_INBOUND_PORTS: Final = "traffic.sidecar.istio.io/excludeInboundPorts"
LINKERD_SKIP_INBOUND_PORTS: Final = "config.linkerd.io/skip-inbound-ports"
LINKERD_DEFAULT_SKIP_INBOUND: Final = ("4567", "4568")
"""Linkerd's ``proxyInit.ignoreInboundPorts`` default (Galera), which a pod annotation replaces."""
MESH_INIT_CONTAINERS: Final = {
    ISTIO_EXCLUDE_INBOUND_PORTS: "istio-init",
    LINKERD_SKIP_INBOUND_PORTS: "linkerd-init",
}
"""The init container that applies each annotation (iptables): present, it already read the pod's annotations."""

# --- OpenTelemetry -------------------------------------------------------------------------------------------
ENV_OTEL_PROPAGATORS: Final = "OTEL_PROPAGATORS"
OTEL_PROPAGATORS_DEFAULT: Final = "tracecontext,baggage"  # the OpenTelemetry SDK default, written out

# --- environment variables: app containers -----------------------------------------------------------------
ENV_LANE: Final = "LANES_LANE"
ENV_APP: Final = "LANES_APP"
ENV_TAG_HEADER: Final = "LANES_TAG_HEADER"
ENV_POD_NAME: Final = "LANES_POD_NAME"
ENV_POD_NAMESPACE: Final = "LANES_POD_NAMESPACE"
ENV_POD_IP: Final = "LANES_POD_IP"
ENV_OTEL_RESOURCE_ATTRIBUTES: Final = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_LANE_KEY: Final = "lanes.lane"  # the resource attribute merged into OTEL_RESOURCE_ATTRIBUTES

# --- environment variables: lanes-prewarm (mirrors helper/env.py) -------------------------------------------
ENV_PREWARM_TARGETS: Final = "LANES_PREWARM_TARGETS"
ENV_PREWARM_POLICY: Final = "LANES_PREWARM_POLICY"
ENV_PREWARM_DEADLINE: Final = "LANES_PREWARM_DEADLINE"
ENV_PREWARM_TIMEOUT: Final = "LANES_PREWARM_TIMEOUT"
ENV_PREWARM_CA_FILE: Final = "LANES_PREWARM_CA_FILE"
ENV_PREWARM_INSECURE: Final = "LANES_PREWARM_INSECURE"
ENV_POD_RESTART_POLICY: Final = "LANES_POD_RESTART_POLICY"  # spec.restartPolicy: Never -> prewarm retries in-process

# --- environment variables: lanes-agent (mirrors helper/env.py) ---------------------------------------------
ENV_AGENT_PORT: Final = "LANES_AGENT_PORT"
ENV_APP_PORT: Final = "LANES_APP_PORT"
ENV_APP_HOST: Final = "LANES_APP_HOST"
ENV_APP_READY_PATH: Final = "LANES_APP_READY_PATH"
ENV_APP_READY_SCHEME: Final = "LANES_APP_READY_SCHEME"
ENV_APP_READY_HOST: Final = "LANES_APP_READY_HOST"
ENV_APP_READY_HEADERS: Final = "LANES_APP_READY_HEADERS"
ENV_POD_IPS: Final = "LANES_POD_IPS"
ENV_WARMUP: Final = "LANES_WARMUP"
ENV_WARMUP_CURVE: Final = "LANES_WARMUP_CURVE"
ENV_WARMUP_REQUESTS: Final = "LANES_WARMUP_REQUESTS"
ENV_WARMUP_REQUESTS_DEADLINE: Final = "LANES_WARMUP_REQUESTS_DEADLINE"
ENV_DRAIN: Final = "LANES_DRAIN"
ENV_OFFLINE_NOTIFY: Final = "LANES_OFFLINE_NOTIFY"
ENV_REGISTRIES: Final = "LANES_REGISTRIES"
ENV_REGISTRY: Final = "LANES_REGISTRY"
ENV_REGISTER_DELAY: Final = "LANES_REGISTER_DELAY"
ENV_REGISTRY_USERNAME: Final = "LANES_REGISTRY_USERNAME"
ENV_REGISTRY_PASSWORD: Final = "LANES_REGISTRY_PASSWORD"
ENV_REGISTRY_ACCESS_TOKEN: Final = "LANES_REGISTRY_ACCESS_TOKEN"

# --- kinds ----------------------------------------------------------------------------------------------------
KIND_REPLICASET: Final = "ReplicaSet"
KIND_DEPLOYMENT: Final = "Deployment"
KIND_STATEFULSET: Final = "StatefulSet"
KIND_DAEMONSET: Final = "DaemonSet"
KIND_JOB: Final = "Job"
KIND_CRONJOB: Final = "CronJob"
