"""Configuration resolution: which value of each setting applies to a pod, and why.

Precedence, highest first: pod (template) annotation > owning workload annotations (nearest owner first: ReplicaSet
then Deployment, Job then CronJob; StatefulSet; DaemonSet) > namespace annotation > namespace label
``lanes.io/lane`` > cluster defaults. Each setting walks that chain and takes the first value that parses; every
value that does not parse becomes a warning naming the annotation, where it was set, the bad value, an example and
the value used instead. Values below the one that applies are not consulted (a bad namespace value shadowed by a
good pod value costs nothing and says nothing; the validating webhook catches bad workload values at apply time).

Owner and namespace metadata come from an :class:`OwnerLookup` (the watch cache): resolution never calls the API
server. When the cache has not seen an owner yet, resolution falls back to the lower layers and says so.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults
from webhook.contract.messages import MAX_MESSAGE, clip, invalid_value, quote
from webhook.contract.settings import ANNOTATION_SETTINGS, BY_ANNOTATION, KNOWN_ANNOTATIONS, LanesConfig, Setting
from webhook.contract.values import app_from_name
from webhook.injection import mesh
from webhook.injection.objects import as_dict, as_list

Pod = dict[str, Any]


class OwnerLookup(Protocol):
    """Read-only view of the watch cache (implemented by webhook.admission.owners.WatchCache).

    Both methods answer from memory; they never call the API server.
    """

    def namespace_metadata(self, name: str) -> dict[str, Any] | None:
        """``{"labels": {...}, "annotations": {...}}`` of a namespace, or None when not (yet) cached."""
        ...

    def workload_metadata(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        """``{"annotations": {...}, "ownerReferences": [...]}`` of a ReplicaSet, Deployment, StatefulSet,
        DaemonSet, Job or CronJob, or None when not (yet) cached."""
        ...


class Layer(NamedTuple):
    """One source of annotations in the precedence chain, e.g. ``Layer("Deployment web", {...})``.

    A NamedTuple rather than a frozen dataclass: several are built per admission, and tuples are built in C."""

    source: str
    annotations: Mapping[str, Any]


@dataclass(slots=True)
class Owners:
    """What the owner chain contributes: workload layers (nearest first), the app name default, warnings."""

    layers: list[Layer] = field(default_factory=list)
    app_name: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Resolution:
    """The resolved configuration, the warnings resolution produced, and where each non-default came from."""

    config: LanesConfig
    warnings: list[str]
    sources: dict[str, str]


# --- the settings table ---------------------------------------------------------------------------------------

SETTINGS: tuple[Setting, ...] = ANNOTATION_SETTINGS
"""Each annotation, the LanesConfig field it sets and its parser (declared in webhook/contract/settings.py)."""
SETTINGS_BY_ANNOTATION: Mapping[str, Setting] = BY_ANNOTATION

# Keys that exist in the contract but are not annotations a user sets: a specific hint beats "did you mean".
_NOT_ANNOTATIONS = {
    names.LABEL_INJECT: "lanes.io/inject is a pod label, not an annotation",
    names.CONDITION_REGISTERED: "lanes.io/registered is a pod condition set by Lanes, not an annotation",
}


def _parse_uncached(key: str, value: str) -> tuple[bool, Any]:
    try:
        return True, SETTINGS_BY_ANNOTATION[key].parse(value)
    except ValueError as exc:
        return False, exc.with_traceback(None)  # cached: keep no frames alive


_parse_cached = lru_cache(maxsize=4096)(_parse_uncached)
_CACHEABLE_LENGTH = 1024  # annotation values may be 256 KiB: never let the cache hold many of those


def _parse_text(key: str, value: str) -> tuple[bool, Any]:
    """Parse results per (annotation, text): every pod of a workload carries the same values."""
    if len(value) > _CACHEABLE_LENGTH:
        return _parse_uncached(key, value)
    return _parse_cached(key, value)


def parse_annotation(key: str, value: Any, pod: Pod | None = None) -> Any:
    """The typed value of one ``lanes.io/*`` setting annotation, or ValueError with a quoted value and example.

    ``pod`` resolves a named ``lanes.io/port`` against the pod's container ports.
    """
    if not isinstance(value, str):
        shown = "true/false" if isinstance(value, bool) else "a number" if isinstance(value, int | float) else ""
        hint = f"; quote it in YAML, e.g. \"{str(value).lower()}\"" if shown else ""
        raise ValueError(f"{quote(value)}: annotation values must be strings{hint}")
    ok, parsed = _parse_text(key, value)
    if not ok:
        raise parsed
    if key == names.ANN_PORT and isinstance(parsed, str) and pod is not None:
        port = next((p for c in containers(pod) if (p := _named(c, parsed)) is not None), None)
        if port is None:
            raise ValueError(f"{quote(value)}: no container port has this name; e.g. 8080")
        if not is_tcp(port):
            raise ValueError(f"{quote(value)}: a {str(port.get('protocol')).upper()} port; the agent needs TCP")
        return _number(port.get("containerPort"))
    return parsed


def unknown_annotation(key: str, source: str = "pod", verdict: str = " ignored") -> str:
    """The message for a ``lanes.io/*`` key that is not part of the contract (most likely a typo)."""
    where = "" if source == "pod" else f" ({clip(source, 40)})"
    if key in _NOT_ANNOTATIONS:
        return clip(f"{_NOT_ANNOTATIONS[key]}{where}" + (f";{verdict}" if verdict else ""))
    suffixes = [known.removeprefix(names.PREFIX) for known in sorted(KNOWN_ANNOTATIONS)]
    close = difflib.get_close_matches(key.removeprefix(names.PREFIX), suffixes, n=1, cutoff=0.6)
    hint = f"; did you mean {names.PREFIX}{close[0]}?" if close else "; see docs/reference.md for the list"
    return clip(f"unknown annotation {quote(key, 40)}{where}{verdict}{hint}", MAX_MESSAGE)


# --- pod helpers --------------------------------------------------------------------------------------------------


def containers(pod: Pod) -> list[dict[str, Any]]:
    """The pod's app containers (``spec.containers``), skipping anything that is not an object."""
    return [c for c in as_list(as_dict(pod.get("spec")).get("containers")) if isinstance(c, dict)]


def _number(value: Any) -> int | None:
    """A port number 1..65535 (JSON integers only: ``True`` and ``8080.0`` are not ports)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    return None


def is_tcp(port: Mapping[str, Any]) -> bool:
    """Whether a container port is TCP (the default protocol): the agent waits for and warms up a TCP port, and a
    UDP or SCTP port never accepts a TCP connection."""
    protocol = port.get("protocol")
    return protocol is None or (isinstance(protocol, str) and protocol.upper() == "TCP")


def _named(container: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for port in as_list(container.get("ports")):
        if isinstance(port, dict) and port.get("name") == name and _number(port.get("containerPort")) is not None:
            return port
    return None


def named_port(pod: Pod, name: str) -> int | None:
    """The number of the container port called ``name`` in any app container, or None."""
    for container in containers(pod):
        port = _named(container, name)
        if port is not None:
            return _number(port.get("containerPort"))
    return None


def app_container(pod: Pod) -> dict[str, Any] | None:
    """The container the app port defaults from: the first one that is not a mesh proxy (``istio-proxy`` comes
    first in legacy and hold-application layouts), or None when there is nothing else (a mesh gateway pod)."""
    return next(iter(mesh.app_containers(containers(pod))), None)


def probe_port(container: Mapping[str, Any], probe: Mapping[str, Any]) -> int | None:
    """The TCP port an httpGet/tcpSocket probe checks: a number, or the name of one of ``container``'s ports (the
    kubelet resolves probe port names against the probed container)."""
    for handler in ("httpGet", "tcpSocket"):
        port = as_dict(probe.get(handler)).get("port")
        if isinstance(port, str) and port.isascii() and port.isdecimal():
            return _number(int(port))  # "8080": the API server refuses it, `lanes inject` may still read it
        if isinstance(port, str):
            named = _named(container, port)
            return _number(named.get("containerPort")) if named is not None and is_tcp(named) else None
        if port is not None:
            return _number(port)
    return None


def default_app_port(pod: Pod) -> int | None:
    """The first TCP containerPort of the app container; failing that, the port of its readiness probe (the
    probe as the app wrote it, when Istio rewrote it to its own agent)."""
    first = app_container(pod)
    if first is None:
        return None
    for port in as_list(first.get("ports")):
        if isinstance(port, dict) and is_tcp(port):
            number = _number(port.get("containerPort"))
            if number is not None:
                return number
    probe = mesh.istio_original_probe(pod, as_dict(first.get("readinessProbe")))
    return probe_port(first, probe)


def no_app_port_reason(pod: Pod) -> str | None:
    """Why a pod whose app container declares ports still has no default app port: they are all UDP/SCTP."""
    first = app_container(pod)
    ports = [p for p in as_list(first.get("ports")) if isinstance(p, dict)] if first is not None else []
    if not ports or any(is_tcp(p) for p in ports):
        return None
    protocols = "/".join(sorted({str(p.get("protocol")).upper() for p in ports}))
    return clip(
        f"container {quote(first.get('name') if first else '', 30)} has only {protocols} ports: no app port"
        f" for the agent; set {names.ANN_PORT} to a TCP port"
    )


def default_app(pod: Pod, owner_name: str | None) -> str:
    """``app.kubernetes.io/name``, then ``app`` label, then the owning workload's name, then the pod's name."""
    metadata = as_dict(pod.get("metadata"))
    labels = as_dict(metadata.get("labels"))
    for label in (names.LABEL_K8S_NAME, names.LABEL_APP_LEGACY):
        value = labels.get(label)
        if isinstance(value, str) and value:
            app = app_from_name(value)
            if app:
                return app
    candidates = [owner_name, metadata.get("generateName"), metadata.get("name")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            app = app_from_name(candidate)
            if app:
                return app
    return "unknown"


def _port_user(pod: Pod, port: int) -> str | None:
    """The name of a (non-Lanes) app or init container declaring ``port``; they share the network namespace."""
    spec = as_dict(pod.get("spec"))
    for key in ("initContainers", "containers"):
        for container in as_list(spec.get(key)):
            if not isinstance(container, dict) or container.get("name") in names.INJECTED_CONTAINERS:
                continue
            for item in as_list(container.get("ports")):
                if isinstance(item, dict) and item.get("containerPort") == port:
                    return str(container.get("name"))
    return None


# --- owners and namespace ------------------------------------------------------------------------------------


def controller_ref(metadata: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """``(kind, name)`` of the controlling owner reference (``controller: true``, else the first one)."""
    refs = as_dict(metadata).get("ownerReferences")
    if not refs or not isinstance(refs, list):
        return None
    chosen = next((r for r in refs if isinstance(r, dict) and r.get("controller") is True), refs[0])
    if not isinstance(chosen, dict):
        return None
    kind, name = chosen.get("kind"), chosen.get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not name:
        return None
    return kind, name


def deployment_name_from_replicaset(rs_name: str, pod_labels: Mapping[str, Any]) -> str | None:
    """``web-5d8f9c7b4`` -> ``web`` when the pod's ``pod-template-hash`` label is the suffix, else None."""
    suffix = pod_labels.get(names.LABEL_POD_TEMPLATE_HASH)
    if isinstance(suffix, str) and suffix and rs_name.endswith("-" + suffix) and len(rs_name) > len(suffix) + 1:
        return rs_name[: -len(suffix) - 1]
    return None


def _source(kind: str, name: str) -> str:
    return f"{kind} {clip(name, 40)}"


def _not_cached(kind: str, name: str, what: str = "its annotations") -> str:
    return clip(f"{kind} {clip(name, 40)} not in the watch cache yet; {what} were not applied")


def owner_layers(pod: Pod, namespace: str, owners: OwnerLookup | None) -> Owners:
    """Follow the pod's controller reference through the cache: ReplicaSet -> Deployment, Job -> CronJob,
    StatefulSet, DaemonSet. Unknown owner kinds only give the app name default."""
    metadata = as_dict(pod.get("metadata"))
    ref = controller_ref(metadata)
    result = Owners()
    if ref is None:
        return result
    kind, name = ref

    def lookup(kind: str, name: str) -> dict[str, Any] | None:
        if owners is None:
            return None
        found = owners.workload_metadata(namespace, kind, name)
        if found is not None:
            result.layers.append(Layer(_source(kind, name), as_dict(found.get("annotations"))))
        return found

    result.app_name = name
    if kind == names.KIND_REPLICASET:
        replicaset = lookup(kind, name)
        deployment: str | None = None
        if replicaset is not None:
            parent = controller_ref(replicaset)
            if parent is not None:
                result.app_name = parent[1]
                deployment = parent[1] if parent[0] == names.KIND_DEPLOYMENT else None
        else:
            deployment = deployment_name_from_replicaset(name, as_dict(metadata.get("labels")))
            if deployment is not None:
                result.app_name = deployment
            elif owners is not None:
                result.warnings.append(_not_cached(kind, name, "workload annotations"))
        if deployment is not None and lookup(names.KIND_DEPLOYMENT, deployment) is None and owners is not None:
            result.warnings.append(_not_cached(names.KIND_DEPLOYMENT, deployment))
    elif kind == names.KIND_JOB:
        job = lookup(kind, name)
        if job is None:
            if owners is not None:
                result.warnings.append(_not_cached(kind, name, "workload annotations"))
        else:
            parent = controller_ref(job)
            if parent is not None:
                result.app_name = parent[1]
                if parent[0] == names.KIND_CRONJOB and lookup(*parent) is None and owners is not None:
                    result.warnings.append(_not_cached(*parent))
    elif (
        kind in (names.KIND_STATEFULSET, names.KIND_DAEMONSET, names.KIND_DEPLOYMENT, names.KIND_CRONJOB)
        and lookup(kind, name) is None
        and owners is not None
    ):
        result.warnings.append(_not_cached(kind, name))
    return result


def namespace_layers(
    annotations: Mapping[str, Any] | None, labels: Mapping[str, Any] | None, name: str = ""
) -> list[Layer]:
    """The namespace's annotations, then its ``lanes.io/lane`` label (a lane set the way ``lanes=enabled`` is)."""
    source = f"namespace {clip(name, 40)}" if name else "namespace"
    layers = [Layer(source, annotations or {})]
    lane = (labels or {}).get(names.LABEL_LANE)
    if lane is not None:
        layers.append(Layer(f"{source} label", {names.ANN_LANE: lane}))
    return layers


def namespace_layers_from_cache(namespace: str, owners: OwnerLookup | None) -> tuple[list[Layer], list[str]]:
    if owners is None:
        return [], []
    metadata = owners.namespace_metadata(namespace)
    if metadata is None:
        return [], [_not_cached("namespace", namespace)]
    return namespace_layers(as_dict(metadata.get("annotations")), as_dict(metadata.get("labels")), namespace), []


# --- resolution ----------------------------------------------------------------------------------------------


def _shown_default(defaults: ClusterDefaults, setting: Setting, value: Any) -> str:
    """How a fallback value reads in a warning: the defaults file's own text where there is one."""
    if setting.default is None:  # computed per pod (app, app_port)
        return "none" if value is None else str(value)
    raw = getattr(defaults, setting.field, value)
    if isinstance(raw, bool):
        return str(raw).lower()
    return str(raw) if raw not in ("", None) else "none"


def _candidates(layers: Sequence[Layer]) -> tuple[dict[str, list[tuple[str, Any]]], list[str]]:
    """Every ``lanes.io/*`` setting value on the layers as ``annotation -> [(source, raw), ...]`` in precedence
    order, and one warning per unknown ``lanes.io/*`` key. One pass over the annotations, whatever their number."""
    found: dict[str, list[tuple[str, Any]]] = {}
    warnings: list[str] = []
    for layer in layers:
        for key, raw in layer.annotations.items():
            if not isinstance(key, str) or not key.startswith(names.PREFIX):
                continue
            if key in SETTINGS_BY_ANNOTATION:
                found.setdefault(key, []).append((layer.source, raw))
            elif key not in KNOWN_ANNOTATIONS:
                warnings.append(unknown_annotation(key, layer.source))
    return found, warnings


def annotation_warnings(layers: Sequence[Layer]) -> list[str]:
    """One warning per unknown ``lanes.io/*`` key on any layer."""
    return _candidates(layers)[1]


def resolve(
    pod: Pod,
    defaults: ClusterDefaults,
    *,
    workloads: Sequence[Layer] = (),
    namespace: Sequence[Layer] = (),
    owner_name: str | None = None,
) -> Resolution:
    """Resolve the configuration of ``pod`` from its annotations, the given workload and namespace layers and
    ``defaults``. Pure: the layers are data; :func:`resolve_pod` gathers them from the watch cache."""
    metadata = as_dict(pod.get("metadata"))
    layers = [Layer("pod", as_dict(metadata.get("annotations"))), *workloads, *namespace]
    found, warnings = _candidates(layers)
    values: dict[str, Any] = dict(defaults.parsed)
    sources: dict[str, str] = {}
    for key, candidates in found.items():
        setting = SETTINGS_BY_ANNOTATION[key]
        failures: list[tuple[str, Exception]] = []
        chosen: Any = None
        for source, raw in candidates:
            try:
                values[setting.field] = parse_annotation(key, raw, pod)
            except ValueError as exc:
                failures.append((source, exc))
                continue
            sources[setting.field] = source
            chosen = raw
            break
        if failures:
            if chosen is None:
                values[setting.field] = _computed_default(setting.field, pod, owner_name, values)
                shown = _shown_default(defaults, setting, values[setting.field])
            else:
                shown = str(chosen).strip()
            warnings.extend(invalid_value(key, src, exc, shown) for src, exc in failures)
    if "app" not in sources:
        values["app"] = default_app(pod, owner_name)
    if "app_port" not in sources:
        values["app_port"] = default_app_port(pod)
        if values["app_port"] is None and values["agent"] and names.ANN_PORT not in found:
            reason = no_app_port_reason(pod)
            if reason is not None:
                warnings.append(reason)
    _check_agent(pod, values, warnings)
    return Resolution(defaults.config(values), warnings, sources)


def _computed_default(field: str, pod: Pod, owner_name: str | None, values: dict[str, Any]) -> Any:
    if field == "app":
        return default_app(pod, owner_name)
    if field == "app_port":
        return default_app_port(pod)
    return values[field]


def _check_agent(pod: Pod, values: dict[str, Any], warnings: list[str]) -> None:
    """Degrade to minimal mode when the agent cannot work: its port is taken, or there is nothing to serve."""
    if not values["agent"]:
        if values["warmup_requests"]:
            warnings.append(f"{names.ANN_WARMUP_REQUESTS} needs the agent; ignored with {names.ANN_AGENT}: false")
        if values["offline_notify"]:
            warnings.append(f"{names.ANN_OFFLINE_NOTIFY} needs the agent; ignored with {names.ANN_AGENT}: false")
        return
    taken = _port_user(pod, values["agent_port"])
    if taken is not None:
        values["agent"] = False
        warnings.append(
            clip(
                f"container {quote(taken, 30)} uses port {values['agent_port']}, the lanes-agent port;"
                " injected without the agent (sleep preStop)"
            )
        )


def resolve_pod(pod: Pod, namespace: str, defaults: ClusterDefaults, owners: OwnerLookup | None) -> Resolution:
    """Resolve a pod under admission: owner and namespace layers from the watch cache (never the API server)."""
    chain = owner_layers(pod, namespace, owners)
    ns_layers, ns_warnings = namespace_layers_from_cache(namespace, owners)
    resolution = resolve(pod, defaults, workloads=chain.layers, namespace=ns_layers, owner_name=chain.app_name)
    resolution.warnings[:0] = chain.warnings + ns_warnings
    return resolution
