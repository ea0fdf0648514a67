"""The issue's scenario as plain objects: services a -> b -> c; gray versions of a and c; Lane gray colored by
header x-user-id: 100. Shared by the renderer tests, the reconciler tests and the CLI tests (as files)."""

from __future__ import annotations

import copy
from typing import Any

JSON = dict[str, Any]

NAMESPACE = "shop"


def pod(app: str, lane: str, index: int = 0, namespace: str = NAMESPACE, warmup: str | None = None) -> JSON:
    annotations = {"lanes.io/warmup": warmup} if warmup else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{app}-{lane}-{index}",
            "namespace": namespace,
            "labels": {"app": app, "lanes.io/app": app, "lanes.io/lane": lane},
            "annotations": annotations,
        },
        "spec": {"containers": [{"name": "app", "image": "sample-app"}]},
    }


def service(name: str, namespace: str = NAMESPACE, port: int = 8080) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": 8080}]},
    }


def lane(name: str = "gray", namespace: str = NAMESPACE, uid: str = "", **spec: Any) -> JSON:
    body: JSON = {
        "apiVersion": "lanes.io/v1alpha1",
        "kind": "Lane",
        "metadata": {"name": name, "namespace": namespace, **({"uid": uid} if uid else {})},
        "spec": spec,
    }
    return body


def gray_lane(namespace: str = NAMESPACE, **extra: Any) -> JSON:
    spec: JSON = {
        "services": ["a", "b", "c"],
        "match": [{"headers": [{"name": "x-user-id", "value": "100"}]}],
        "entry": {"service": "a", "port": 8080},
        "gateway": {"parentRefs": [{"name": "edge", "namespace": "gateways"}], "hostnames": ["base.example.com"]},
    }
    spec.update(extra)
    return lane("gray", namespace, uid="uid-gray", **spec)


def workloads(namespace: str = NAMESPACE) -> tuple[list[JSON], list[JSON]]:
    """Pods and Services: a, b, c in base; a and c also in gray."""
    pods = [pod(app, "base", namespace=namespace) for app in "abc"]
    pods += [pod("a", "gray", namespace=namespace, warmup="30s"), pod("c", "gray", namespace=namespace)]
    return pods, [service(app, namespace) for app in "abc"]


def with_status(obj: JSON, status: JSON) -> JSON:
    out = copy.deepcopy(obj)
    out["status"] = status
    return out
