"""Kubernetes Events about pods, each written at most once per pod and reason.

The Event's name is derived from the pod's UID and the reason, so a second attempt (a new leader after a
failover, a relist) gets 409 AlreadyExists instead of a duplicate: "report each pod once" holds across replicas
without any shared state. Core ``v1`` Events, which ``kubectl describe pod`` and ``kubectl events`` show.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Literal

from webhook.controller import pods as podfacts
from webhook.kube.client import JSON, Kube, KubeError, path_segment

log = logging.getLogger("lanes.controller.events")

COMPONENT = "lanes-controller"


def event_name(pod: JSON, reason: str) -> str:
    return f"{podfacts.meta(pod).get('name')}.lanes-{reason.lower()}-{podfacts.uid_of(pod)[:8]}"


class EventRecorder:
    """Writes Events as this replica (``reportingInstance``)."""

    def __init__(self, kube: Kube, identity: str) -> None:
        self.kube = kube
        self.identity = identity

    def pod_event(
        self, pod: JSON, reason: str, message: str, *, warning: bool, timeout: Callable[[], float] | None = None
    ) -> Literal["written", "exists", "failed"]:
        """Record the Event: ``written`` now, ``exists`` (written before, by any replica) or ``failed``."""
        namespace = podfacts.namespace_of(pod)
        meta = podfacts.meta(pod)
        involved = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta.get("name"),
            "namespace": namespace,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        return self.record(involved, event_name(pod, reason), reason, message, warning=warning, timeout=timeout)

    def record(
        self,
        involved: JSON,
        name: str,
        reason: str,
        message: str,
        *,
        warning: bool,
        timeout: Callable[[], float] | None = None,
    ) -> Literal["written", "exists", "failed"]:
        """Record an Event named ``name`` about ``involved`` (apiVersion, kind, name, namespace, uid): the one
        writer behind :meth:`pod_event` and the Lane reconciler's events (webhook/controller/routing)."""
        namespace = str(involved.get("namespace") or "")
        now = dt.datetime.now(dt.UTC)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.identity,
            "action": reason,
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        seconds = timeout() if timeout else 10.0
        try:
            self.kube.create(
                f"/api/v1/namespaces/{path_segment(namespace)}/events", body, timeout=(min(5.0, seconds), seconds)
            )
        except KubeError as exc:
            if exc.status == 409:
                return "exists"
            where = f"{namespace}/{involved.get('name')}"
            log.warning("could not record event", extra={"object": where, "reason": reason, "error": str(exc)})
            return "failed"
        return "written"
