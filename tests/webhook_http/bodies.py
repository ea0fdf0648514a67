"""AdmissionReview v1 bodies shaped like the ones kube-apiserver sends."""

from __future__ import annotations

import uuid
from typing import Any


def pod(name: str = "web-7d9c", namespace: str = "shop", **metadata: Any) -> dict[str, Any]:
    """A Pod as the API server sends it for CREATE: one app container with a port; extra metadata merged."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app": "web"},
        "annotations": {},
        **metadata,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example/web:1.0",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                }
            ]
        },
    }


def review(
    obj: Any,
    *,
    uid: str | None = None,
    kind: dict[str, str] | None = None,
    resource: dict[str, str] | None = None,
    operation: str = "CREATE",
    namespace: str | None = "shop",
    dry_run: bool = False,
    old: Any = None,
    sub_resource: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview v1 request shaped like the API server's."""
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": kind or {"group": "", "version": "v1", "kind": "Pod"},
        "resource": resource or {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": kind or {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": resource or {"group": "", "version": "v1", "resource": "pods"},
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": []},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    if namespace is not None:
        request["namespace"] = namespace
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        request["name"] = obj["metadata"].get("name", "")
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


APPS = {"group": "apps", "version": "v1"}


def workload(kind: str = "Deployment", annotations: dict[str, str] | None = None, name: str = "web") -> dict[str, Any]:
    template = pod(name="", namespace="shop")
    template["metadata"].pop("name")
    template["metadata"].pop("namespace")
    template["metadata"]["annotations"] = dict(annotations or {})
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template},
    }


def workload_review(obj: Any, kind: str = "Deployment", **kwargs: Any) -> dict[str, Any]:
    resource = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}.get(kind, kind)
    return review(obj, kind={**APPS, "kind": kind}, resource={**APPS, "resource": resource}, **kwargs)
