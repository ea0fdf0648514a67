"""Builders of pods, workloads and a dict-backed owner cache for the webhook unit tests.

``FakeOwners`` is a data source with the OwnerLookup interface (what the watch cache answers from memory), not a
mock of Kubernetes: tests put plain metadata in and resolution reads it back.
"""

from __future__ import annotations

import copy
from typing import Any

from webhook.contract.defaults import ClusterDefaults
from webhook.contract.settings import LanesConfig


class FakeOwners:
    """OwnerLookup backed by dicts: ``namespaces[name]`` and ``workloads[(namespace, kind, name)]``."""

    def __init__(
        self,
        namespaces: dict[str, dict[str, Any]] | None = None,
        workloads: dict[tuple[str, str, str], dict[str, Any]] | None = None,
    ) -> None:
        self.namespaces = namespaces or {}
        self.workloads = workloads or {}
        self.calls: list[tuple[str, ...]] = []

    def namespace_metadata(self, name: str) -> dict[str, Any] | None:
        self.calls.append(("namespace", name))
        return self.namespaces.get(name)

    def workload_metadata(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        self.calls.append((namespace, kind, name))
        return self.workloads.get((namespace, kind, name))


def container(name: str = "app", *, port: int | None = 8080, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "image": f"example.com/{name}:1"}
    if port is not None:
        body["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    body.update(extra)
    return body


def pod(
    *containers: dict[str, Any],
    name: str | None = "web-1",
    namespace: str = "shop",
    labels: dict[str, str] | None = None,
    annotations: dict[str, Any] | None = None,
    owner: tuple[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"namespace": namespace}
    if name is not None:
        metadata["name"] = name
    if labels is not None:
        metadata["labels"] = dict(labels)
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    if owner is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "u-1", "controller": True}
        ]
    body: dict[str, Any] = {"containers": list(containers) or [container()]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body}


def config(**values: Any) -> LanesConfig:
    """A LanesConfig from the built-in defaults plus ``values``."""
    base = dict(ClusterDefaults().parsed)
    base.setdefault("app", "web")
    base.setdefault("app_port", 8080)
    base.update(values)
    return LanesConfig(**base)


def frozen(value: Any) -> Any:
    """A deep copy to compare against later: proves an input was not modified."""
    return copy.deepcopy(value)


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env") or []}


def init_named(pod: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in pod["spec"].get("initContainers") or [] if c["name"] == name), None)
