"""AdmissionReview v1 request bodies for the admission benchmarks, shaped like kube-apiserver's.

- ``small``: a Deployment's pod with one container, a port, an httpGet readiness probe, a few labels and the
  ``lanes.io/lane`` annotation (pod ~1.5 KB, review ~2.2 KB);
- ``large``: five containers, each with many environment variables (plain values, ``valueFrom`` references),
  ports, probes, resources and volume mounts, plus Lanes annotations that change the grace period (pod ~20 KB).

Both are pods created by a ReplicaSet (``generateName``, ``ownerReferences``), in namespace ``shop``, with no
``lanes.io/prewarm`` (the Go yardstick ports the mutation without the prewarm init container; see
bench/go-webhook/README.md). ``python -m bench.bodies DIR`` writes ``small.json`` and ``large.json`` to DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

NAMESPACE = "shop"
UID = "7f0e1a52-3c1b-4c07-9a0e-5a4b8d1c2e3f"


def _container(name: str, index: int, envs: int, full: bool = True) -> dict[str, Any]:
    env: list[dict[str, Any]] = []
    for i in range(envs):
        if i % 10 == 7:
            env.append({"name": f"{name.upper()}_SECRET_{i}",
                        "valueFrom": {"secretKeyRef": {"name": f"{name}-secrets", "key": f"key-{i}"}}})
        elif i % 10 == 9:
            env.append({"name": f"{name.upper()}_CONFIG_{i}",
                        "valueFrom": {"configMapKeyRef": {"name": f"{name}-config", "key": f"setting-{i}"}}})
        else:
            env.append({"name": f"{name.upper()}_SETTING_{i}", "value": f"value-{i}-{'x' * (i % 7)}"})
    port = 8080 + index
    if not full:
        return {
            "name": name,
            "image": f"registry.example.com/shop/{name}:1.24.{index}",
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "env": env,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": port, "scheme": "HTTP"}, "periodSeconds": 5},
            "volumeMounts": [{"name": "kube-api-access-abcde", "readOnly": True,
                              "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        }
    return {
        "name": name,
        "image": f"registry.example.com/shop/{name}:1.24.{index}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": f"http-{index}" if index else "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": port, "scheme": "HTTP"},
            "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
            "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
             "readOnly": True},
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def _pod(containers: int, envs: int, annotations: dict[str, str]) -> dict[str, Any]:
    if containers == 1:  # the small pod: what a minimal Deployment's pod looks like after built-in admission
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "generateName": "web-5d8f9c7b4-",
                "namespace": NAMESPACE,
                "labels": {"app": "web", "pod-template-hash": "5d8f9c7b4"},
                "annotations": annotations,
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f9c7b4",
                    "uid": "b2c9f8e4-1d2a-4f7e-8d3c-0a9b8c7d6e5f", "controller": True, "blockOwnerDeletion": True,
                }],
            },
            "spec": {
                "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                ]}}],
                "containers": [_container("web", 0, envs, full=False)],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "serviceAccountName": "default",
            },
        }
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": "web-5d8f9c7b4-",
            "namespace": NAMESPACE,
            "creationTimestamp": None,
            "labels": {"app": "web", "app.kubernetes.io/name": "web", "pod-template-hash": "5d8f9c7b4"},
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f9c7b4",
                "uid": "b2c9f8e4-1d2a-4f7e-8d3c-0a9b8c7d6e5f", "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "kube-api-access-abcde", "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                ], "defaultMode": 420}},
            ],
            "containers": [_container("web" if i == 0 else f"side{i}", i, envs) for i in range(containers)],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 300},
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {},
    }


def small_pod() -> dict[str, Any]:
    return _pod(1, 6, {"lanes.io/lane": "gray"})


def large_pod() -> dict[str, Any]:
    return _pod(5, 50, {
        "lanes.io/lane": "gray",
        "lanes.io/warmup": "60s",
        "lanes.io/warmup-curve": "k=2",
        "lanes.io/drain": "20s",
        "kubectl.kubernetes.io/restartedAt": "2026-11-20T10:00:00Z",
    })


def review(pod: dict[str, Any], uid: str = UID) -> dict[str, Any]:
    """The AdmissionReview the API server sends for a pod CREATE by the ReplicaSet controller."""
    kind = {"group": "", "version": "v1", "kind": "Pod"}
    resource = {"group": "", "version": "v1", "resource": "pods"}
    return {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "name": "",
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "0c7e6f2a-5b4d-4e3c-9a1b-2d3e4f5a6b7c",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


BODIES = {"small": small_pod, "large": large_pod}


def encoded(name: str) -> bytes:
    """The review as the API server sends it: compact JSON."""
    return json.dumps(review(BODIES[name]()), separators=(",", ":")).encode()


def write(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in BODIES:
        path = directory / f"{name}.json"
        path.write_bytes(encoded(name))
        out[name] = path
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for name, path in write(target).items():
        print(f"{name}: {path} ({path.stat().st_size} bytes)")
