"""``lanes inject``: the admission mutation applied offline to manifests, like ``istioctl kube-inject``.

Walks YAML documents (and the items of ``List`` kinds), finds pod templates (Pod, Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job, CronJob, ReplicationController, OpenShift DeploymentConfig) and runs the very
resolution and mutation the webhook runs, with the same precedence: the template's annotations, then the owning
workloads', then the namespace annotations and labels given on the command line, then the cluster defaults.

Owners are followed as the webhook follows them (``webhook.injection.resolve.owner_layers``), with the input itself
standing in for the webhook's watch cache: a Pod owned by ReplicaSet ``web-7d9f8c`` (as ``kubectl get pod -o yaml``
prints it) is app ``web``, from its ``pod-template-hash`` label or from the ReplicaSet when the input holds it; a
ReplicaSet owned by a Deployment, or a Job owned by a CronJob, is named after that owner and gets its annotations
when the input holds it. Other kinds pass through untouched. Warnings name the source (when there are several),
the document (1-based) and the object. No cluster is needed: this module does no I/O besides what the CLI hands it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults
from webhook.injection import kubeyaml
from webhook.injection.mutation import Mutation, mutate, skip_message, skip_reason
from webhook.injection.objects import as_dict
from webhook.injection.resolve import Layer, namespace_layers, owner_layers, resolve

KIND_REPLICATION_CONTROLLER = "ReplicationController"
KIND_DEPLOYMENT_CONFIG = "DeploymentConfig"  # apps.openshift.io/v1: its pods come from ReplicationControllers

#: Kinds whose pods the webhook sees with an owner it follows in its watch cache; their metadata stands in for it.
_OWNER_KINDS = frozenset(
    (
        names.KIND_REPLICASET,
        names.KIND_DEPLOYMENT,
        names.KIND_STATEFULSET,
        names.KIND_DAEMONSET,
        names.KIND_JOB,
        names.KIND_CRONJOB,
    )
)

_TEMPLATE_KINDS = (
    names.KIND_DEPLOYMENT,
    names.KIND_STATEFULSET,
    names.KIND_DAEMONSET,
    names.KIND_REPLICASET,
    names.KIND_JOB,
    KIND_REPLICATION_CONTROLLER,
    KIND_DEPLOYMENT_CONFIG,
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


class _DuplicateJsonKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateJsonKey(key)
        result[key] = value
    return result


def _json_documents(text: str, source: str) -> list[Any] | None:
    """A stream of JSON values, read as kubectl reads JSON input (tabs and all); None when it is not JSON."""
    decoder = json.JSONDecoder(object_pairs_hook=_unique_pairs)
    documents: list[Any] = []
    index = len(text) - len(text.lstrip())
    try:
        while index < len(text):
            document, end = decoder.raw_decode(text, index)
            documents.append(document)
            index = end + len(text[end:]) - len(text[end:].lstrip())
    except _DuplicateJsonKey as exc:
        raise ManifestError(f"{source}: document {len(documents) + 1}: duplicate key {str(exc)!r}") from None
    except json.JSONDecodeError:
        return None  # kubectl, too, reads it as YAML then
    return [document for document in documents if document is not None]


def load_documents(text: str, source: str = "<stdin>") -> list[Any]:
    """Every document of ``text`` as kubectl reads it (empty documents dropped): a JSON stream when it is one,
    else YAML. Raises :class:`ManifestError` naming the source, the 1-based document index and the line of the
    first syntax error or duplicate key."""
    if text.lstrip()[:1] in ("{", "["):
        parsed = _json_documents(text, source)
        if parsed is not None:
            return parsed
    documents: list[Any] = []
    index = 1
    try:
        for document in kubeyaml.load_stream(text):
            if document is not None:
                documents.append(document)
            index += 1
    except kubeyaml.DuplicateKeyError as exc:
        mark = exc.problem_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ManifestError(f"{source}: document {index}{line}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{source}: document {index}{line}: invalid YAML: {problem}") from None
    return documents


def dump_documents(documents: list[Any]) -> str:
    """YAML text of ``documents`` that kubectl reads as these very objects (see webhook.injection.kubeyaml)."""
    return kubeyaml.dump_stream(documents)


def _label(obj: Mapping[str, Any]) -> str:
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else "object"
    name = as_dict(obj.get("metadata")).get("name") or as_dict(obj.get("metadata")).get("generateName") or "(unnamed)"
    return f"{kind}/{name}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class InputOwners:
    """The workloads of the input, answering like the webhook's watch cache (``resolve.OwnerLookup``): what the
    cluster would know about a pod's owners when the input holds them (``kubectl get pods,rs,deploy -o yaml``)."""

    def __init__(self) -> None:
        self._workloads: dict[tuple[str, str, str], dict[str, Any]] = {}

    def add(self, obj: Any) -> None:
        """Remember ``obj`` (and the items of a List) when it is a workload the webhook's cache would hold."""
        if not isinstance(obj, dict):
            return
        kind = obj.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
            for item in obj["items"]:
                self.add(item)
            return
        metadata = as_dict(obj.get("metadata"))
        name = _text(metadata.get("name"))
        if kind in _OWNER_KINDS and name:
            annotations = {
                k: v for k, v in as_dict(metadata.get("annotations")).items()
                if isinstance(k, str) and k.startswith(names.PREFIX)
            }
            refs = [r for r in metadata.get("ownerReferences") or () if isinstance(r, dict)]
            entry = {"name": name, "annotations": annotations, "ownerReferences": refs}
            self._workloads[(_text(metadata.get("namespace")), str(kind), name)] = entry

    def namespace_metadata(self, name: str) -> dict[str, Any] | None:
        return None  # the namespace comes from --namespace-annotation / --namespace-label

    def workload_metadata(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        return self._workloads.get((namespace, kind, name))


class _Walker:
    """Injects one stream of documents, collecting prefixed diagnostics."""

    def __init__(self, options: InjectOptions, owners: InputOwners | None = None) -> None:
        self.options = options
        self.owners = owners or InputOwners()
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

    def _owned(self, pod: dict[str, Any], namespace: str | None) -> tuple[list[Layer], str | None]:
        """The workload layers and app name default the webhook would derive for ``pod``. The webhook's warnings
        about owners missing from its cache are dropped: an input that lacks them is the normal case here."""
        chain = owner_layers(pod, namespace or "", self.owners)
        return chain.layers, chain.app_name

    def _inject(
        self, template: dict[str, Any], where: str, namespace: str | None, layers: list[Layer],
        workloads: list[Layer], owner_name: str | None,
    ) -> dict[str, Any]:
        defaults = self.options.defaults
        reason = skip_reason(template, namespace, defaults.own_namespace)
        if reason is not None:
            self.note(where, skip_message(template, reason) or _SKIP_TEXT.get(reason, f"not injected: {reason}"))
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
        workloads, app_name = self._owned(pod, namespace)
        return self._inject(pod, where, namespace, layers, workloads, app_name)

    def workload(self, obj: dict[str, Any], where: str) -> dict[str, Any]:
        spec = as_dict(obj.get("spec"))
        template = spec.get("template")
        if not isinstance(template, dict):
            self.note(where, "not injected: no spec.template")
            return obj
        metadata = as_dict(obj.get("metadata"))
        name = metadata.get("name") if isinstance(metadata.get("name"), str) else None
        namespace, layers = self._namespace(obj)
        kind = str(obj["kind"])
        if kind in _OWNER_KINDS and name:
            # the pod this workload's controller would create: owned by it, so resolved through its owner chain
            self.owners.add(obj)
            owned = {"metadata": {"ownerReferences": [{"kind": kind, "name": name, "controller": True}]}}
            workloads, app_name = self._owned(owned, namespace)
        elif kind in _OWNER_KINDS:  # no name (generateName): nothing to look up, its annotations still apply
            workloads, app_name = [Layer(kind, as_dict(metadata.get("annotations")))], None
        else:
            # ReplicationController (and DeploymentConfig's): the webhook names the app after it, reads no layer
            workloads, app_name = [], name
        injected = self._inject(template, where, namespace, layers, workloads, app_name)
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


@dataclass(frozen=True)
class Source:
    """One input: its text and the name diagnostics use (a path, or ``<stdin>``)."""

    text: str
    name: str = "<stdin>"


def inject_documents(
    documents: list[Any], options: InjectOptions | None = None, owners: InputOwners | None = None, prefix: str = ""
) -> InjectResult:
    """Apply the mutation to every pod template in ``documents``; everything else is returned unchanged.
    ``owners`` (default: these documents) stands in for the webhook's watch cache."""
    if owners is None:
        owners = InputOwners()
        for document in documents:
            owners.add(document)
    walker = _Walker(options or InjectOptions(), owners)
    walker.result.documents = [walker.document(doc, f"{prefix}doc {i}") for i, doc in enumerate(documents, 1)]
    return walker.result


def inject_sources(sources: list[Source], options: InjectOptions | None = None) -> InjectResult:
    """Read every source (all of them, before injecting any), then inject them in order; warnings name the source
    when there are several. The workloads of all sources stand in for the watch cache, as one cluster would."""
    loaded = [(source, load_documents(source.text, source.name)) for source in sources]
    owners = InputOwners()
    for _, documents in loaded:
        for document in documents:
            owners.add(document)
    total = InjectResult([])
    for source, documents in loaded:
        prefix = f"{source.name} " if len(sources) > 1 else ""
        result = inject_documents(documents, options, owners, prefix)
        total.documents += result.documents
        total.warnings += result.warnings
        total.injected += result.injected
    return total


def inject_text(text: str, options: InjectOptions | None = None, source: str = "<stdin>") -> InjectResult:
    """:func:`load_documents` then :func:`inject_documents`."""
    return inject_documents(load_documents(text, source), options)
