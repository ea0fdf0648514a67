"""What a service mesh changes for Lanes: its proxy is never the app, and the agent's port must bypass it.

Three things, all pure readers of the pod:

- :func:`is_proxy` / :func:`app_containers`: the meshes' injectors add a proxy container (``istio-proxy``,
  ``linkerd-proxy``, ...; webhook/contract/names.py lists them). Legacy and ``holdApplicationUntilProxyStarts``
  layouts put it *first*, so "the first container" is the proxy unless it is skipped, and a mesh gateway pod has
  nothing but the proxy (the mesh manages its lifecycle: Lanes leaves it alone, see mutation.skip_reason).
- :func:`istio_original_probe`: when Istio's injector ran before Lanes, the app's httpGet probes point at
  pilot-agent (``/app-health/<container>/readyz`` on 15020) and the original probe is kept in the proxy's
  ``ISTIO_KUBE_APP_PROBERS``; the agent must probe the app itself.
- :func:`merged_ports`: under strict mTLS the kubelet's plaintext probes and preStop call to the agent's port are
  captured by the mesh and refused. Each mesh reads a pod annotation listing inbound ports that bypass capture
  (Istio ``traffic.sidecar.istio.io/excludeInboundPorts``, Linkerd ``config.linkerd.io/skip-inbound-ports``, both
  comma lists; Linkerd also takes ranges ``a-b``). Lanes adds its port to them, keeping what the user set.

Why the annotations are written on every pod with the agent rather than only "under a mesh": at admission Lanes
often cannot tell. The mesh's injector may run after Lanes (webhooks run in name order), injection may be enabled
by a namespace label, a revision tag or mesh-wide defaults Lanes does not read, and with istio-cni/linkerd-cni the
annotation is read only when the pod's network is set up. Without the mesh the annotations are inert.
"""

from __future__ import annotations

import json
from typing import Any

from webhook.contract import names
from webhook.injection.objects import as_dict, as_list

_ISTIO_HEALTH_PREFIX = "/app-health/"


def is_proxy(container: Any) -> bool:
    """Whether ``container`` is a mesh's (or Dapr's) proxy sidecar, by the name its injector gives it."""
    name = as_dict(container).get("name")
    return isinstance(name, str) and name in names.MESH_PROXY_CONTAINERS


def app_containers(containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``containers`` without the mesh proxies, in order."""
    return [c for c in containers if not is_proxy(c)]


def proxy_names(containers: list[dict[str, Any]]) -> list[str]:
    return [str(c.get("name")) for c in containers if is_proxy(c)]


def _istio_probers(pod: dict[str, Any]) -> dict[str, Any]:
    """``ISTIO_KUBE_APP_PROBERS`` of the pod's istio-proxy (a container or a native sidecar), parsed; {} if none."""
    spec = as_dict(pod.get("spec"))
    for key in ("containers", "initContainers"):
        for container in as_list(spec.get(key)):
            if as_dict(container).get("name") != names.ISTIO_PROXY:
                continue
            for item in as_list(container.get("env")):
                item = as_dict(item)
                if item.get("name") == names.ISTIO_KUBE_APP_PROBERS and isinstance(item.get("value"), str):
                    try:
                        parsed = json.loads(item["value"])
                    except ValueError:
                        return {}
                    return parsed if isinstance(parsed, dict) else {}
    return {}


def istio_original_probe(pod: dict[str, Any], probe: dict[str, Any]) -> dict[str, Any]:
    """The probe the app wrote, when ``probe`` is one Istio rewrote to pilot-agent; else ``probe`` itself."""
    path = as_dict(probe.get("httpGet")).get("path")
    if not isinstance(path, str) or not path.startswith(_ISTIO_HEALTH_PREFIX):
        return probe
    original = _istio_probers(pod).get(path)
    return original if isinstance(original, dict) else probe


# --- inbound capture exclusions ----------------------------------------------------------------------------------


def _covers(item: str, port: int) -> bool:
    low, dash, high = item.partition("-")
    try:
        if dash:
            return int(low) <= port <= int(high)
        return int(item) == port
    except ValueError:
        return False


def merged_ports(current: Any, port: int, defaults: tuple[str, ...] = ()) -> str | None:
    """``current`` (a comma list the user set, or None) with ``port`` added; None when it already covers it.

    The user's text is kept as written and the port appended, so a value is never reordered or reformatted.
    ``defaults`` is what the mesh itself would use when the annotation is absent (the annotation replaces it)."""
    if not isinstance(current, str) or not current.strip():
        return ",".join([*defaults, str(port)])
    items = [part.strip() for part in current.split(",") if part.strip()]
    if any(_covers(item, port) for item in items):
        return None
    return current.rstrip().rstrip(",") + f",{port}"


MESH_PORT_ANNOTATIONS: dict[str, tuple[str, ...]] = {
    names.ISTIO_EXCLUDE_INBOUND_PORTS: (),
    names.LINKERD_SKIP_INBOUND_PORTS: names.LINKERD_DEFAULT_SKIP_INBOUND,
}
"""Each mesh's "these inbound ports bypass the proxy" annotation and the default the annotation replaces."""
