"""Facts about a pod that the gate, the repair loop and ``lanes doctor`` all need, decided in one place.

The pod watch is cluster-wide, so :func:`project` keeps only the fields these functions read (a few hundred
bytes per pod instead of the full object). Whether a pod "should have been injected" is the webhook's own
:func:`webhook.injection.mutation.skip_reason`, so repair can never disagree with admission about which pods Lanes owns.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from webhook.contract import names
from webhook.contract.durations import DurationError, parse_duration
from webhook.injection.mutation import read_status, skip_reason

log = logging.getLogger("lanes.controller.pods")

JSON = dict[str, Any]

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
"""Mirror pods stand for the kubelet's static pods: recreating them is not up to any controller."""

_KEPT_ANNOTATIONS = (names.ANN_STATUS, names.ANN_REGISTER_DELAY, MIRROR_ANNOTATION)


def project(pod: JSON) -> JSON:
    """The subset of a pod the controller reads; everything else is dropped to keep the watch cache small."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    annotations = meta.get("annotations") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
            "labels": meta.get("labels") or {},
            "annotations": {k: v for k, v in annotations.items() if k in _KEPT_ANNOTATIONS},
            "ownerReferences": meta.get("ownerReferences") or [],
        },
        "spec": {
            "readinessGates": spec.get("readinessGates") or [],
            "hostNetwork": spec.get("hostNetwork"),
            "os": spec.get("os"),
            "nodeName": spec.get("nodeName"),
            "containers": [{"name": c.get("name")} for c in spec.get("containers") or [] if isinstance(c, dict)],
        },
        "status": {"phase": status.get("phase"), "conditions": status.get("conditions") or []},
    }


def meta(pod: JSON) -> JSON:
    return pod.get("metadata") or {}


def namespace_of(pod: JSON) -> str:
    return str(meta(pod).get("namespace") or "")


def in_namespace(pods: Iterable[JSON], name: str | None) -> list[JSON]:
    """The pods of one namespace: what a loop re-evaluates when that namespace is enabled or disabled."""
    return [pod for pod in pods if namespace_of(pod) == name]


def uid_of(pod: JSON) -> str:
    return str(meta(pod).get("uid") or "")


def describe(pod: JSON) -> str:
    return f"{namespace_of(pod)}/{meta(pod).get('name')}"


def condition(pod: JSON, kind: str) -> JSON | None:
    for item in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(item, dict) and item.get("type") == kind:
            return item
    return None


def condition_true(pod: JSON, kind: str) -> bool:
    item = condition(pod, kind)
    return item is not None and item.get("status") == "True"


def has_gate(pod: JSON) -> bool:
    """The pod carries the ``lanes.io/registered`` readiness gate."""
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    return any(isinstance(g, dict) and g.get("conditionType") == names.CONDITION_REGISTERED for g in gates)


def is_deleting(pod: JSON) -> bool:
    return bool(meta(pod).get("deletionTimestamp"))


def is_terminal(pod: JSON) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_injected(pod: JSON) -> bool:
    """The webhook recorded an injection (``lanes.io/status``)."""
    return names.ANN_STATUS in (meta(pod).get("annotations") or {})


def parse_time(text: object) -> float | None:
    """Unix seconds of a Kubernetes timestamp (``2024-05-01T10:00:00Z``, optionally with fractions)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def register_delay(pod: JSON, default: float = 0.0) -> float:
    """Seconds the gate waits after ``ContainersReady``.

    The resolved value the webhook recorded in ``lanes.io/status`` (``config.register_delay``, the result of the
    whole precedence chain) wins; a pod without it (e.g. injected by ``lanes inject`` from an older release)
    falls back to its ``lanes.io/register-delay`` annotation, then to ``default``. An unreadable value means the
    default: the webhook already warned about it at admission.
    """
    status = read_status(pod)
    if status is not None:
        config = status.get("config")
        value = config.get("register_delay") if isinstance(config, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    annotation = (meta(pod).get("annotations") or {}).get(names.ANN_REGISTER_DELAY)
    if annotation is not None:
        try:
            return parse_duration(annotation)
        except DurationError:
            log.debug("unreadable register delay", extra={"pod": describe(pod), "value": annotation})
    return default


def needs_repair(pod: JSON, own_namespace: str) -> bool:
    """A live pod the webhook would have injected but that carries no injection (checked for pods of enabled
    namespaces only): admitted while the webhook was unreachable under ``failurePolicy: Ignore``, or created
    before its namespace was enabled."""
    if is_injected(pod) or is_deleting(pod) or is_terminal(pod):
        return False
    if MIRROR_ANNOTATION in (meta(pod).get("annotations") or {}):
        return False
    return skip_reason(pod, namespace_of(pod), own_namespace) is None


def controller_owner(pod: JSON) -> JSON | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in meta(pod).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def recreated_by_owner(pod: JSON) -> bool:
    """Eviction only repairs a pod whose controller replaces it: not a bare pod (it would just be gone) and not a
    Job's pod (the Job counts it as failed and may not retry)."""
    owner = controller_owner(pod)
    return owner is not None and owner.get("kind") != names.KIND_JOB
