"""Kubernetes Services as a registry: the one every pod is in, and the one that needs no call to leave."""

from __future__ import annotations


class KubernetesRegistry:
    """Kubernetes Services: no API call, the failing readiness check already does the deregistration."""

    name = "kubernetes"

    async def deregister(self) -> str:
        return "/ready now answers 503: the pod leaves its Services' EndpointSlices once the kubelet probes it"
