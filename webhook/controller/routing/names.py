"""Names of the Lane API and of what the controller generates from it, in one place.

The generated objects are found again by their label (``lanes.io/generated``), never by name alone, so an object a
user created with a colliding name is reported instead of silently taken over, and an object that is no longer
rendered (a service left the lane group, a Lane was deleted) is found and deleted.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

GROUP: Final = "lanes.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "Lane"
PLURAL: Final = "lanes"
LANES_PATH: Final = f"/apis/{API_VERSION}/{PLURAL}"

FINALIZER: Final = "lanes.io/generated-objects"
"""Held by every Lane the controller has seen: deleting the Lane waits until what it generated is gone."""

FIELD_MANAGER: Final = "lanes-controller"

LABEL_GENERATED: Final = "lanes.io/generated"
"""``"true"`` on every generated object; the reconciler's watches of generated kinds select on it."""
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "lanes-controller"
LABEL_LANE: Final = "lanes.io/lane"
LABEL_APP: Final = "lanes.io/app"
ANN_LANES: Final = "lanes.io/lanes"
"""Comma list of the Lanes an object serves (shared objects such as a VirtualService serve several)."""
ANN_STATUS: Final = "lanes.io/status"
ANN_WARMUP: Final = "lanes.io/warmup"

SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"  # on EndpointSlices

GATEWAY_GROUP: Final = "gateway.networking.k8s.io"
GATEWAY_VERSION: Final = f"{GATEWAY_GROUP}/v1"
ISTIO_GROUP: Final = "networking.istio.io"
ISTIO_VERSION: Final = f"{ISTIO_GROUP}/v1"

# Outputs a Lane (or the controller's default) can ask for.
OUTPUT_GATEWAY: Final = "GatewayAPI"
OUTPUT_ISTIO: Final = "Istio"
OUTPUT_GAMMA: Final = "GAMMA"
OUTPUT_EAST_WEST: Final = "EastWest"
OUTPUTS: Final = (OUTPUT_GATEWAY, OUTPUT_ISTIO, OUTPUT_GAMMA, OUTPUT_EAST_WEST)

BAGGAGE_KEY: Final = "lanes.lane"
BAGGAGE_HEADER: Final = "baggage"

MODE_PERMISSIVE: Final = "Permissive"
MODE_STRICT: Final = "Strict"

# Why a service of a lane is served by the baseline (status.services[].fallback).
FALLBACK_NO_SERVICE: Final = "NoService"
FALLBACK_NO_VERSION: Final = "NoVersion"
FALLBACK_NO_READY: Final = "NoReadyEndpoints"

_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def object_name(*parts: str, limit: int = 63) -> str:
    """``part-part-...``, kept within ``limit`` characters (a DNS label): a too-long name is cut and suffixed with
    a hash of the full one, so two long names never collide and the same input always gives the same name."""
    name = "-".join(p for p in parts if p)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def is_dns1035(name: str) -> bool:
    return len(name) <= 63 and _DNS1035.fullmatch(name) is not None
