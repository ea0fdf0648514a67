"""``lanes inject``: the admission mutation applied offline to manifests, like ``istioctl kube-inject``.

Walks YAML documents (and the items of ``List`` kinds), finds pod templates (Pod, Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job, CronJob) and runs the very resolution and mutation the webhook runs, with the same
precedence: the template's annotations, then the workload's own (for a CronJob: its job template, then the
CronJob), then the namespace annotations and labels given on the command line, then the cluster defaults. Other
kinds pass through untouched. Warnings name the document (1-based) and the object. No cluster is needed: this
module does no I/O besides what the CLI hands it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults
from webhook.injection.mutation import Mutation, mutate, skip_reason
from webhook.injection.objects import as_dict
from webhook.injection.resolve import Layer, controller_ref, namespace_layers, resolve

_TEMPLATE_KINDS = (
    names.KIND_DEPLOYMENT,
    names.KIND_STATEFULSET,
    names.KIND_DAEMONSET,
    names.KIND_REPLICASET,
    names.KIND_JOB,
)

_SKIP_TEXT = {
    "own-namespace": "not injected: it is in the webhook's own namespace",
    "opted-out": 'not injected: labeled lanes.io/inject: "false"',
    "hostNetwork": "not injected: hostNetwork pods are never injected",
    "windows": "not injected: Windows pods are never injected",
    "invalid-pod": "not injected: no valid pod spec (containers with names)",
    "already-injected": "already injected with this configuration; unchanged",
}


class ManifestError(ValueError):
    """Input that cannot be read as YAML manifests; the message names the document and line."""


@dataclass(frozen=True)
class InjectOptions:
    """What the cluster would contribute: its defaults and the target namespace's annotations and labels."""

    defaults: ClusterDefaults = field(default_factory=ClusterDefaults)
    namespace_annotations: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class InjectResult:
    """The output documents and the diagnostics, each already prefixed with its document and object."""

    documents: list[Any]
    warnings: list[str] = field(default_factory=list)
    injected: int = 0


def load_documents(text: str, source: str = "<stdin>") -> list[Any]:
    """Every YAML document of ``text`` (empty documents dropped). Raises :class:`ManifestError` naming the
    1-based document index and line of the first syntax error."""
    documents: list[Any] = []
    loader = yaml.SafeLoader(text)
    index = 1
    try:
        while loader.check_data():
            document = loader.get_data()
            if document is not None:
                documents.append(document)
            index += 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{source}: document {index}{line}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    return documents


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no ``&id001`` anchors even where the mutation shares unchanged subtrees."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_documents(documents: list[Any]) -> str:
    """YAML text of ``documents``, separated by ``---``, keys in their original order, long strings unfolded."""
    if not documents:
        return ""
    return yaml.dump_all(
        documents,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
        explicit_start=len(documents) > 1,
    )


def _label(obj: Mapping[str, Any]) -> str:
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else "object"
    name = as_dict(obj.get("metadata")).get("name") or as_dict(obj.get("metadata")).get("generateName") or "(unnamed)"
    return f"{kind}/{name}"


class _Walker:
    """Injects one stream of documents, collecting prefixed diagnostics."""

    def __init__(self, options: InjectOptions) -> None:
        self.options = options
        self.result = InjectResult([])

    def note(self, where: str, message: str) -> None:
        self.result.warnings.append(f"{where}: {message}")

    def document(self, obj: Any, where: str) -> Any:
        if not isinstance(obj, dict):
            return obj
        kind = obj.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
            items = [self.document(item, f"{where} item {i}") for i, item in enumerate(obj["items"], 1)]
            return {**obj, "items": items}
        where = f"{where} {_label(obj)}"
        if kind == "Pod":
            return self.pod(obj, where)
        if kind in _TEMPLATE_KINDS:
            return self.workload(obj, where)
        if kind == names.KIND_CRONJOB:
            return self.cronjob(obj, where)
        return obj

    def _namespace(self, obj: Mapping[str, Any]) -> tuple[str | None, list[Layer]]:
        namespace = as_dict(obj.get("metadata")).get("namespace")
        name = namespace if isinstance(namespace, str) else ""
        layers = namespace_layers(self.options.namespace_annotations, self.options.namespace_labels, name)
        return (namespace if isinstance(namespace, str) else None), layers

    def _inject(
        self, template: dict[str, Any], where: str, namespace: str | None, layers: list[Layer],
        workloads: list[Layer], owner_name: str | None,
    ) -> dict[str, Any]:
        defaults = self.options.defaults
        reason = skip_reason(template, namespace, defaults.own_namespace)
        if reason is not None:
            self.note(where, _SKIP_TEXT.get(reason, f"not injected: {reason}"))
            return template
        resolution = resolve(template, defaults, workloads=workloads, namespace=layers, owner_name=owner_name)
        mutation: Mutation = mutate(template, resolution.config)
        for message in dict.fromkeys(resolution.warnings + mutation.warnings):
            self.note(where, message)
        if mutation.skipped is not None:
            self.note(where, _SKIP_TEXT.get(mutation.skipped, f"not injected: {mutation.skipped}"))
            return template
        self.result.injected += 1
        return mutation.pod

    def pod(self, pod: dict[str, Any], where: str) -> dict[str, Any]:
        namespace, layers = self._namespace(pod)
        ref = controller_ref(as_dict(pod.get("metadata")))
        return self._inject(pod, where, namespace, layers, [], ref[1] if ref else None)

    def workload(self, obj: dict[str, Any], where: str) -> dict[str, Any]:
        spec = as_dict(obj.get("spec"))
        template = spec.get("template")
        if not isinstance(template, dict):
            self.note(where, "not injected: no spec.template")
            return obj
        metadata = as_dict(obj.get("metadata"))
        name = metadata.get("name") if isinstance(metadata.get("name"), str) else None
        namespace, layers = self._namespace(obj)
        workloads = [Layer(f"{obj['kind']} {name or ''}".strip(), as_dict(metadata.get("annotations")))]
        injected = self._inject(template, where, namespace, layers, workloads, name)
        return obj if injected is template else {**obj, "spec": {**spec, "template": injected}}

    def cronjob(self, obj: dict[str, Any], where: str) -> dict[str, Any]:
        spec = as_dict(obj.get("spec"))
        job = as_dict(spec.get("jobTemplate"))
        job_spec = as_dict(job.get("spec"))
        template = job_spec.get("template")
        if not isinstance(template, dict):
            self.note(where, "not injected: no spec.jobTemplate.spec.template")
            return obj
        metadata = as_dict(obj.get("metadata"))
        name = metadata.get("name") if isinstance(metadata.get("name"), str) else None
        namespace, layers = self._namespace(obj)
        workloads = [
            Layer("jobTemplate", as_dict(as_dict(job.get("metadata")).get("annotations"))),
            Layer(f"CronJob {name or ''}".strip(), as_dict(metadata.get("annotations"))),
        ]
        injected = self._inject(template, where, namespace, layers, workloads, name)
        if injected is template:
            return obj
        new_job = {**job, "spec": {**job_spec, "template": injected}}
        return {**obj, "spec": {**spec, "jobTemplate": new_job}}


def inject_documents(documents: list[Any], options: InjectOptions | None = None) -> InjectResult:
    """Apply the mutation to every pod template in ``documents``; everything else is returned unchanged."""
    walker = _Walker(options or InjectOptions())
    walker.result.documents = [walker.document(doc, f"doc {i}") for i, doc in enumerate(documents, 1)]
    return walker.result


def inject_text(text: str, options: InjectOptions | None = None, source: str = "<stdin>") -> InjectResult:
    """:func:`load_documents` then :func:`inject_documents`."""
    return inject_documents(load_documents(text, source), options)
