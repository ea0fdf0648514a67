"""Transport-independent admission decisions: what to answer for a Pod CREATE and for a workload.

The transport (webhook/app.py) parses the AdmissionReview and calls only :func:`admit_pod` and
:func:`validate_workload`; everything here is synchronous, pure apart from reading the watch cache through
:class:`OwnerLookup`, and fast enough to run on the event loop (well under a millisecond for large pods).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults
from webhook.contract.messages import add_prefix, spec_reason
from webhook.injection.mutation import mutate_admissible, skip_message, skip_reason
from webhook.injection.objects import as_dict
from webhook.injection.patch import make_ops
from webhook.injection.resolve import (
    SETTINGS_BY_ANNOTATION,
    OwnerLookup,
    parse_annotation,
    resolve_pod,
    unknown_annotation,
)

__all__ = ["OwnerLookup", "PodAdmission", "admit_pod", "pod_templates", "validate_workload"]


@dataclass
class PodAdmission:
    """What the transport needs to answer an AdmissionReview for a Pod."""

    patch: list[dict[str, Any]] = field(default_factory=list)  # JSON Patch ops; empty = allow unchanged
    warnings: list[str] = field(default_factory=list)  # each <= 120 characters
    injected: bool = False
    skip_reason: str | None = None  # "hostNetwork", "opted-out", "own-namespace", "already-injected", ...


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def admit_pod(
    pod: dict[str, Any], namespace: str, defaults: ClusterDefaults, owners: OwnerLookup | None
) -> PodAdmission:
    """Skip checks -> resolve (pod > workload > namespace > defaults) -> mutate -> JSON Patch.

    Skip reasons: ``own-namespace``, ``opted-out``, ``hostNetwork``, ``windows``, ``invalid-pod`` (left for the
    API server to reject), ``mesh-proxy-only`` and ``reserved-name`` (both with a warning saying why) and
    ``already-injected`` (``lanes.io/status`` is current: reinvocation is a no-op).
    Warnings carry the ``lanes: `` prefix and are at most 120 characters.
    """
    reason = skip_reason(pod, namespace, defaults.own_namespace)
    if reason is not None:
        message = skip_message(pod, reason)
        return PodAdmission(warnings=[add_prefix(message)] if message else [], skip_reason=reason)
    resolution = resolve_pod(pod, namespace, defaults, owners)
    mutation = mutate_admissible(pod, resolution.config)
    warnings = [add_prefix(w) for w in _dedupe(resolution.warnings + mutation.warnings)]
    if mutation.skipped is not None:
        return PodAdmission(warnings=warnings, skip_reason=mutation.skipped)
    return PodAdmission(patch=make_ops(pod, mutation.pod), warnings=warnings, injected=True)


def pod_templates(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(path, metadata)`` of every annotation-bearing part of a workload, outermost first, pod template last:
    ``metadata`` and ``spec.template.metadata``; for a CronJob also ``spec.jobTemplate.metadata``."""
    spec = as_dict(obj.get("spec"))
    out: list[tuple[str, dict[str, Any]]] = [("metadata", as_dict(obj.get("metadata")))]
    prefix = "spec.template"
    if obj.get("kind") == names.KIND_CRONJOB:
        job = as_dict(spec.get("jobTemplate"))
        out.append(("spec.jobTemplate.metadata", as_dict(job.get("metadata"))))
        spec = as_dict(job.get("spec"))
        prefix = "spec.jobTemplate.spec.template"
    out.append((f"{prefix}.metadata", as_dict(as_dict(spec.get("template")).get("metadata"))))
    return out


_TEMPLATE_KINDS = {
    names.KIND_DEPLOYMENT,
    names.KIND_STATEFULSET,
    names.KIND_DAEMONSET,
    names.KIND_REPLICASET,
    names.KIND_JOB,
    names.KIND_CRONJOB,
}


def _template(obj: dict[str, Any]) -> dict[str, Any]:
    spec = as_dict(obj.get("spec"))
    if obj.get("kind") == names.KIND_CRONJOB:
        spec = as_dict(as_dict(spec.get("jobTemplate")).get("spec"))
    return as_dict(spec.get("template"))


def validate_workload(obj: dict[str, Any], defaults: ClusterDefaults) -> list[str]:
    """Errors for invalid ``lanes.io/*`` annotations on a Deployment/StatefulSet/DaemonSet (its own metadata and
    its pod template); each names the annotation, the bad value and an example of a good one. Empty = valid.

    ReplicaSets, Jobs and CronJobs are checked the same way; other kinds have nothing to check. A named
    ``lanes.io/port`` must name a container port of the pod template. Unknown ``lanes.io/*`` keys are errors
    (with a "did you mean"): at apply time a typo is cheap to fix, at runtime it silently does nothing.
    """
    del defaults  # the annotations' validity does not depend on the cluster defaults
    if not isinstance(obj, dict) or obj.get("kind") not in _TEMPLATE_KINDS:
        return []
    template = _template(obj)
    errors: list[str] = []
    for path, metadata in pod_templates(obj):
        annotations = as_dict(metadata.get("annotations"))
        for key, value in annotations.items():
            if not isinstance(key, str) or not key.startswith(names.PREFIX) or key == names.ANN_STATUS:
                continue
            where = f"{path}.annotations[{key}]"
            if key not in SETTINGS_BY_ANNOTATION:
                errors.append(f"{path}.annotations: " + unknown_annotation(key, verdict=""))
                continue
            try:
                parse_annotation(key, value, template)
            except ValueError as exc:
                errors.append(f"{where}: {spec_reason(exc)}")
    return errors
