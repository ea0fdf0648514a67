"""Kubernetes Services as a registry: the one every pod is in, and the one that needs no call to leave.

When the pod is deleted the EndpointSlice controller marks its endpoints ``terminating: true, ready: false`` at
once, so kube-proxy, meshes and ingress controllers stop choosing it while other ready endpoints exist. Its
``serving`` condition keeps following the pod's readiness, and kube-proxy falls back to serving terminating
endpoints when no ready ones remain (KEP-1669, ProxyTerminatingEndpoints): that is why the agent's /ready keeps
answering 200 through the drain instead of failing it.
"""

from __future__ import annotations


class KubernetesRegistry:
    """Kubernetes Services: no API call; the EndpointSlice controller takes the deleted pod out of rotation."""

    name = "kubernetes"

    async def deregister(self) -> str:
        return (
            "no call: the EndpointSlice controller marked the deleted pod's endpoints terminating and not ready;"
            " /ready keeps answering 200 so they stay serving for kube-proxy's fallback until the drain ends"
        )
