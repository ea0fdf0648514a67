"""THE pure function: ``mutate(pod, config) -> Mutation(pod, warnings)``. No I/O, no API calls.

What it injects is the product contract (docs/reference.md):

- labels ``lanes.io/lane`` and ``lanes.io/app``; annotation ``lanes.io/status`` (JSON, see :func:`status_of`);
- on every app container: ``LANES_LANE``, ``LANES_APP``, ``LANES_TAG_HEADER``, ``LANES_POD_NAME``,
  ``LANES_POD_NAMESPACE``, ``LANES_POD_IP`` (prepended, so the app's own variables may reference them as
  ``$(LANES_LANE)``), ``lanes.lane=<lane>`` merged into ``OTEL_RESOURCE_ATTRIBUTES`` and
  ``OTEL_PROPAGATORS=tracecontext,baggage`` when the app sets none; a variable the user already set is never
  overridden (warning);
- ``lanes-prewarm`` init container (when prewarm targets are configured) and the ``lanes-agent`` native sidecar,
  both appended after the user's init containers, prewarm first: user init containers keep their semantics and
  ordering (they may prepare what a dependency check needs, e.g. a mesh proxy), the dependency check runs right
  before the app, and the agent starts last, right before the app containers it serves (its startupProbe holds
  them until it listens);
- ``lifecycle.preStop`` on every app container that has none: ``httpGet`` to the agent's ``/prestop`` on the
  agent's port *number* (the kubelet resolves a named port of a hook against the hook's own container), or a
  ``sleep`` of the drain in minimal mode;
- with the agent, on the app container when it has no readiness probe of its own: the agent's ``/ready/app``
  (:func:`app_readiness_probe`), so the pod's readiness follows the app across container restarts;
- readiness gate ``lanes.io/registered``; ``terminationGracePeriodSeconds`` raised (never lowered) so that drain
  plus the app's shutdown budget fit;
- with the agent, its port merged into the meshes' inbound-capture exclusions (webhook/injection/mesh.py).

Pods it leaves alone are decided by :func:`skip_reason` from the pod alone (the controller's repair agrees with
it): besides the obvious ones, mesh gateway pods and pods whose own containers carry a name Lanes injects.

The result shares unchanged subtrees with the input (copy-on-write): the input is never modified, and the patch
builder (webhook.injection.patch) skips every subtree that is the very same object, which keeps admission well under a
millisecond for large pods. What depends on the configuration alone (the injected containers, the app containers'
variables, the preStop hook, the app readiness probe) is built once per configuration and shared by every pod that
resolves to it (:func:`_shared`). Treat both the input and the output as read-only.

Idempotent: a pod whose ``lanes.io/status`` has the same hash and container list is returned as is; a pod injected
with a different configuration is updated in place, using the previous status to tell what Lanes injected (and may
change) from what the user set (and is kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, NamedTuple

import orjson

from webhook.contract import names
from webhook.contract.durations import format_duration, format_seconds
from webhook.contract.messages import clip, quote
from webhook.contract.settings import LanesConfig
from webhook.injection import mesh
from webhook.injection.objects import as_dict, as_list
from webhook.injection.resolve import is_tcp, probe_port

Pod = dict[str, Any]

STATUS_VERSION = 1
"""Version of the ``lanes.io/status`` format and of the injection itself; part of the idempotency check."""

DEFAULT_GRACE_SECONDS = 30  # Kubernetes' default terminationGracePeriodSeconds

def security_context(uid: int | None = None) -> dict[str, Any]:
    """Pod Security ``restricted`` for an injected container (a fresh object each time: never shared).

    ``uid`` None leaves the user to the image (its numeric ``USER 65532:65532``) or to the platform: OpenShift's
    restricted-v2 assigns a UID from the namespace's range and rejects containers that ask for another one.
    ``runAsNonRoot`` is what Pod Security ``restricted`` requires, and the kubelet enforces it against the image's
    numeric user. See :func:`helper_uid` for when a UID is set anyway."""
    context: dict[str, Any] = {"runAsNonRoot": True}
    if uid is not None:
        context["runAsUser"] = uid
        context["runAsGroup"] = uid
    context.update({
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
    return context


def helper_uid(config: LanesConfig, pod: Pod) -> int | None:
    """The ``runAsUser`` of the injected containers: the ``run_as_user`` setting; unset, none (the image's user),
    except in a pod whose own ``securityContext.runAsUser`` is 0: the containers would inherit root and the kubelet
    would refuse them under ``runAsNonRoot``, so they run as the image's user explicitly."""
    if config.run_as_user is not None:
        return config.run_as_user
    pod_context = as_dict(as_dict(pod.get("spec")).get("securityContext"))
    root = pod_context.get("runAsUser") == 0 and not isinstance(pod_context.get("runAsUser"), bool)
    return names.NONROOT_UID if root else None


@dataclass(slots=True)
class Mutation:
    """The mutated pod, warnings for the user (each within the admission budget), and why nothing was done."""

    pod: Pod
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None


# --- small readers ------------------------------------------------------------------------------------------------


def _covers(existing: Any, desired: Any) -> bool:
    """True when ``existing`` already says everything ``desired`` says; extra keys in objects are allowed (the
    API server fills in defaults such as ``timeoutSeconds`` after injection), lists must match item by item."""
    if existing is desired:
        return True
    if isinstance(desired, dict):
        return isinstance(existing, dict) and all(
            key in existing and _covers(existing[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(existing, list)
            and len(existing) == len(desired)
            and all(_covers(e, d) for e, d in zip(existing, desired, strict=True))
        )
    return type(existing) is type(desired) and existing == desired


# --- skip decisions ----------------------------------------------------------------------------------------------


def skip_reason(pod: Pod, namespace: str | None = None, own_namespace: str | None = None) -> str | None:
    """Why ``pod`` must not be touched, or None. Reasons: ``own-namespace`` (the webhook's own pods must start
    when the webhook is down), ``opted-out`` (label ``lanes.io/inject: "false"``), ``hostNetwork`` (the agent's port
    would be a node port shared by every such pod), ``windows`` (the helper image is Linux: ``spec.os``, the
    ``kubernetes.io/os`` nodeSelector, or a required node affinity that admits only Windows), ``invalid-pod``,
    ``mesh-proxy-only`` (a mesh gateway: the mesh manages its proxy's lifecycle) and ``reserved-name`` (a user
    container is named like one Lanes injects: injecting would duplicate or replace it).

    Only properties of the pod itself, never of the configuration: the controller's repair uses this too, and must
    never evict a pod admission deliberately left alone. :func:`skip_message` says why, for the user."""
    if own_namespace and namespace == own_namespace:
        return "own-namespace"
    if not isinstance(pod, dict):
        return "invalid-pod"
    metadata = pod.get("metadata")
    spec = pod.get("spec")
    if (metadata is not None and not isinstance(metadata, dict)) or not isinstance(spec, dict):
        return "invalid-pod"
    inject = as_dict(as_dict(metadata).get("labels")).get(names.LABEL_INJECT)
    if isinstance(inject, str) and inject.strip().lower() == "false":
        return "opted-out"
    if spec.get("hostNetwork") is True:
        return "hostNetwork"
    if _windows(spec):
        return "windows"
    app = spec.get("containers")
    if not isinstance(app, list) or not app:
        return "invalid-pod"
    for key in ("containers", "initContainers"):
        items = spec.get(key)
        if items is not None and not isinstance(items, list):
            return "invalid-pod"
        for container in items or ():
            if not isinstance(container, dict) or not isinstance(container.get("name"), str):
                return "invalid-pod"
    if not mesh.app_containers(app):
        return "mesh-proxy-only"
    if _reserved_conflict(pod) is not None:
        return "reserved-name"
    return None


_OS_LABELS = ("kubernetes.io/os", "beta.kubernetes.io/os")


def _windows_only_term(term: Any) -> bool:
    """A nodeSelectorTerm that matches only Windows nodes (its expressions are ANDed: one such is enough)."""
    for expression in as_list(as_dict(term).get("matchExpressions")):
        expression = as_dict(expression)
        values = as_list(expression.get("values"))
        key, operator = expression.get("key"), expression.get("operator")
        if key in _OS_LABELS and operator == "In" and values and all(value == "windows" for value in values):
            return True
    return False


def _windows(spec: dict[str, Any]) -> bool:
    """Whether the pod can only run on Windows nodes: ``spec.os.name``, the OS nodeSelector, or a required node
    affinity whose every term (terms are ORed) requires ``kubernetes.io/os In [windows]``."""
    if as_dict(spec.get("os")).get("name") == "windows":
        return True
    selector = as_dict(spec.get("nodeSelector"))
    if any(selector.get(label) == "windows" for label in _OS_LABELS):
        return True
    required = as_dict(as_dict(as_dict(spec.get("affinity")).get("nodeAffinity")).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ))
    terms = as_list(required.get("nodeSelectorTerms"))
    return bool(terms) and all(_windows_only_term(term) for term in terms)


def _recorded_init_containers(pod: Pod) -> list[str]:
    """The init containers ``lanes.io/status`` says Lanes injected (what re-invocation may update)."""
    recorded = as_list(as_dict(as_dict(read_status(pod)).get("injected")).get("initContainers"))
    return [name for name in recorded if isinstance(name, str)]


def _reserved_conflict(pod: Pod) -> str | None:
    """The message when a user container carries a name Lanes injects, or None. App containers never may (Lanes
    only injects init containers); an init container may when ``lanes.io/status`` records it as Lanes' own, once."""
    spec = pod["spec"]
    for container in spec["containers"]:
        if container["name"] in names.INJECTED_CONTAINERS:
            return f"container {quote(container['name'])} has a name Lanes injects; not injected (rename it)"
    init_names = [c["name"] for c in spec.get("initContainers") or ()]
    reserved = [name for name in init_names if name in names.INJECTED_CONTAINERS]
    if not reserved:
        return None
    ours = _recorded_init_containers(pod)
    for name in reserved:
        if name not in ours or init_names.count(name) > 1:
            return f"initContainers {quote(name)} has a name Lanes injects; not injected (rename it)"
    return None


def skip_message(pod: Pod, reason: str | None) -> str | None:
    """What to tell the user about a skip that is a surprise (the others are expected and stay silent)."""
    if reason == "reserved-name":
        return _reserved_conflict(pod)
    if reason == "mesh-proxy-only":
        proxies = ", ".join(mesh.proxy_names(pod["spec"]["containers"]))
        return clip(f"only mesh proxy containers ({proxies}): a mesh gateway; not injected")
    return None


# --- status annotation -------------------------------------------------------------------------------------------


def read_status(pod: Pod) -> dict[str, Any] | None:
    """The parsed ``lanes.io/status`` of ``pod``, or None when absent or unreadable (then it is re-injected)."""
    raw = as_dict(as_dict(pod.get("metadata")).get("annotations")).get(names.ANN_STATUS)
    if not isinstance(raw, str):
        return None
    try:
        status = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return status if isinstance(status, dict) else None


def is_current(status: dict[str, Any] | None, config: LanesConfig, container_names: list[str]) -> bool:
    """True when the pod was injected by this format version, for this configuration and these containers."""
    if status is None:
        return False
    injected = as_dict(status.get("injected"))
    return (
        status.get("version") == STATUS_VERSION
        and status.get("hash") == config.hash
        and list(as_dict(injected.get("containers"))) == container_names
    )


def status_of(config: LanesConfig, injected: dict[str, Any]) -> str:
    """The ``lanes.io/status`` value: compact JSON ``{"version", "hash", "config", "injected"}``."""
    # The config part is serialized once per LanesConfig (configs are cached per workload, see resolve.py).
    return (
        f'{{"version":{STATUS_VERSION},"hash":"{config.hash}","config":{config.json_text},'
        f'"injected":{orjson.dumps(injected).decode()}}}'
    )


# --- templates of what is injected ------------------------------------------------------------------------------


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


_APP_ENV_NAMES = frozenset(
    (
        names.ENV_LANE,
        names.ENV_APP,
        names.ENV_TAG_HEADER,
        names.ENV_POD_NAME,
        names.ENV_POD_NAMESPACE,
        names.ENV_POD_IP,
        names.ENV_OTEL_RESOURCE_ATTRIBUTES,
        names.ENV_OTEL_PROPAGATORS,
    )
)


def _env_names(env: list[Any]) -> list[Any]:
    """The ``name`` of each env entry (None for malformed ones), at C speed for the usual all-dicts list."""
    try:
        return list(map(dict.get, env, repeat("name")))
    except TypeError:
        return [item.get("name") if isinstance(item, dict) else None for item in env]


def _positions(present: list[Any]) -> dict[str, int]:
    """Where each variable Lanes manages first appears among ``present`` (env entry names). Names that are not
    strings (a malformed pod the API server will reject) are skipped, never hashed."""
    try:
        wanted: Any = _APP_ENV_NAMES.intersection(present)  # at C speed: the usual all-strings list
    except TypeError:  # an unhashable name (a dict, a list)
        wanted = [key for key in _APP_ENV_NAMES if key in present]
    return {key: present.index(key) for key in wanted}


def app_env(config: LanesConfig) -> list[dict[str, Any]]:
    """The variables every app container gets, in order (``OTEL_RESOURCE_ATTRIBUTES`` is merged separately)."""
    return [
        {"name": names.ENV_LANE, "value": config.lane},
        {"name": names.ENV_APP, "value": config.app},
        {"name": names.ENV_TAG_HEADER, "value": config.tag_header},
        _field_env(names.ENV_POD_NAME, "metadata.name"),
        _field_env(names.ENV_POD_NAMESPACE, "metadata.namespace"),
        _field_env(names.ENV_POD_IP, "status.podIP"),
    ]


def _helper_container(
    name: str, args: list[str], env: list[dict[str, Any]], config: LanesConfig, uid: int | None
) -> dict[str, Any]:
    return {
        "name": name,
        "image": config.helper_image,
        "imagePullPolicy": config.image_pull_policy,
        "args": args,
        "env": env,
        "resources": {kind: dict(values) for kind, values in config.resources.items()},
        "securityContext": security_context(uid),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def prewarm_container(config: LanesConfig, uid: int | None = None, restart_policy: Any = None) -> dict[str, Any]:
    """``lanes-prewarm``: checks every dependency target once before the app starts (env contract in
    docs/architecture.md)."""
    env = [
        {"name": names.ENV_PREWARM_TARGETS, "value": ",".join(config.prewarm)},
        {"name": names.ENV_PREWARM_POLICY, "value": config.prewarm_policy},
        {"name": names.ENV_PREWARM_DEADLINE, "value": format_seconds(config.prewarm_deadline)},
        {"name": names.ENV_PREWARM_TIMEOUT, "value": format_seconds(config.prewarm_timeout)},
    ]
    if restart_policy == "Never":  # the kubelet will not run it again after a failure: it retries in-process
        env.append({"name": names.ENV_POD_RESTART_POLICY, "value": restart_policy})
    return _helper_container(names.CONTAINER_PREWARM, ["prewarm"], env, config, uid)


def _probe(path: str, period: int, failures: int, timeout: int) -> dict[str, Any]:
    # Written with the values the API server would default, so a stored pod still "covers" the template.
    return {
        "httpGet": {"path": path, "port": names.AGENT_PORT_NAME, "scheme": "HTTP"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
        "successThreshold": 1,
    }


_REGISTRY_SECRET_KEYS = (
    (names.ENV_REGISTRY_USERNAME, "username"),
    (names.ENV_REGISTRY_PASSWORD, "password"),
    (names.ENV_REGISTRY_ACCESS_TOKEN, "accessToken"),
)


def registry_env(config: LanesConfig) -> list[dict[str, Any]]:
    """The agent's external registry (``lanes.io/registry``): its URL, the register delay, and the credentials as
    ``valueFrom.secretKeyRef`` of ``lanes.io/registry-secret`` (optional keys: username + password, or accessToken),
    so no secret is ever in the pod spec in clear."""
    if config.registry is None:
        return []
    env: list[dict[str, Any]] = [
        {"name": names.ENV_REGISTRY, "value": config.registry},
        {"name": names.ENV_REGISTER_DELAY, "value": format_seconds(config.register_delay)},
    ]
    if config.registry_secret is not None:
        for env_name, key in _REGISTRY_SECRET_KEYS:
            ref = {"name": config.registry_secret, "key": key, "optional": True}
            env.append({"name": env_name, "valueFrom": {"secretKeyRef": ref}})
    return env


class ReadyProbe(NamedTuple):
    """The app's httpGet readiness probe as the agent repeats it (shared contract with helper/config.py)."""

    path: str
    scheme: str
    host: str | None = None
    """``httpGet.host``: the kubelet dials it instead of the pod IP."""
    headers: tuple[tuple[str, str], ...] = ()
    """``httpGet.httpHeaders`` in order (a Cookie, a Host); passed as JSON ``[{"name", "value"}]``."""


def agent_container(
    config: LanesConfig, ready: ReadyProbe | tuple[str, str] | None, uid: int | None = None
) -> dict[str, Any]:
    """``lanes-agent``: the native sidecar (init container with ``restartPolicy: Always``). ``ready`` is the app's
    httpGet readiness probe handed over so the agent waits for it, not just for the port."""
    env = [{"name": names.ENV_AGENT_PORT, "value": str(config.agent_port)}]
    if config.app_port is not None:
        env.append({"name": names.ENV_APP_PORT, "value": str(config.app_port)})
    if ready is not None:
        probe = ReadyProbe(*ready)
        env.append({"name": names.ENV_APP_READY_PATH, "value": probe.path})
        env.append({"name": names.ENV_APP_READY_SCHEME, "value": probe.scheme})
        if probe.host:
            env.append({"name": names.ENV_APP_READY_HOST, "value": probe.host})
        if probe.headers:
            headers = [{"name": name, "value": value} for name, value in probe.headers]
            env.append({"name": names.ENV_APP_READY_HEADERS, "value": orjson.dumps(headers).decode()})
    env.append({"name": names.ENV_WARMUP, "value": format_seconds(config.warmup)})
    env.append({"name": names.ENV_WARMUP_CURVE, "value": config.warmup_curve})
    if config.warmup_requests:
        env.append({"name": names.ENV_WARMUP_REQUESTS, "value": config.warmup_requests})
    env.append({"name": names.ENV_DRAIN, "value": format_seconds(config.drain)})
    if config.offline_notify:
        env.append({"name": names.ENV_OFFLINE_NOTIFY, "value": ",".join(config.offline_notify)})
    env.extend(registry_env(config))
    env.extend(item for item in app_env(config) if item["name"] != names.ENV_TAG_HEADER)
    env.append(_field_env(names.ENV_POD_IPS, "status.podIPs"))  # the agent tries each to reach the app
    container = _helper_container(names.CONTAINER_AGENT, ["agent"], env, config, uid)
    container["restartPolicy"] = "Always"
    container["ports"] = [{"name": names.AGENT_PORT_NAME, "containerPort": config.agent_port, "protocol": "TCP"}]
    container["startupProbe"] = _probe(names.AGENT_PATH_HEALTHZ, period=1, failures=30, timeout=1)
    container["readinessProbe"] = _probe(names.AGENT_PATH_READY, period=1, failures=2, timeout=1)
    container["livenessProbe"] = _probe(names.AGENT_PATH_HEALTHZ, period=10, failures=3, timeout=2)
    return container


def app_readiness_probe(config: LanesConfig) -> dict[str, Any]:
    """The readiness probe of an app container that has none: the agent's ``/ready/app``, which answers 200 only
    while the agent is ready and the app answers a check made at that moment.

    Without a probe the kubelet counts the container ready the moment it runs: after a crash, an OOM kill or a
    failed liveness probe the restarted app would be Ready (in the Service) before it listens and without warm-up.
    A restarted container with a probe starts unready. By port number: a named port is looked up in the probed
    container's own ports, and the agent's port is declared on the agent's container."""
    return {
        "httpGet": {"path": names.AGENT_PATH_APP_READY, "port": config.agent_port, "scheme": "HTTP"},
        "periodSeconds": 1,
        "failureThreshold": 2,
        "timeoutSeconds": 2,
        "successThreshold": 1,
    }


def pre_stop(config: LanesConfig) -> dict[str, Any] | None:
    """The preStop handler for app containers: the agent's /prestop by port number, a sleep of the drain in
    minimal mode, or None (minimal mode with no drain: nothing to wait for)."""
    if config.agent:
        return {"httpGet": {"path": names.AGENT_PATH_PRESTOP, "port": config.agent_port, "scheme": "HTTP"}}
    seconds = math.ceil(config.drain)
    return {"sleep": {"seconds": seconds}} if seconds > 0 else None


# --- built once per configuration ----------------------------------------------------------------------------------

_SHARED_LIMIT = 1024
_shared_cache: dict[tuple[Any, ...], Any] = {}
_MISSING = object()  # templates may be None (no preStop hook)


def _shared(kind: str, config: LanesConfig, *args: Any) -> Any:
    """The template ``kind`` (``app_env``, ``pre_stop``, ``probe``, ``agent``, ``prewarm``) for ``config`` and the
    per-pod ``args`` it also depends on, built on first use and then shared: pods of one workload resolve to one
    configuration, and building the agent container alone is a tenth of a small pod's mutation.

    Keyed by the configuration's canonical JSON (not its 64-bit hash: equal keys must mean equal templates) and the
    hashable per-pod inputs; bounded by clearing. Never keyed by anything from the request beyond those inputs, so
    it cannot replay an answer. Shared objects: read-only, like the rest of the mutation's output."""
    key = (kind, config.json_text, *args)
    found = _shared_cache.get(key, _MISSING)
    if found is _MISSING:
        if len(_shared_cache) >= _SHARED_LIMIT:
            _shared_cache.clear()
        found = _shared_cache[key] = _BUILDERS[kind](config, *args)
    return found


def _prewarm_for(config: LanesConfig, uid: int | None, never_restarts: bool) -> dict[str, Any]:
    return prewarm_container(config, uid, "Never" if never_restarts else None)


_BUILDERS: dict[str, Any] = {
    "app_env": app_env,
    "pre_stop": pre_stop,
    "probe": app_readiness_probe,
    "agent": agent_container,
    "prewarm": _prewarm_for,
}


# --- the mutation ------------------------------------------------------------------------------------------------


def mutate(pod: Pod, config: LanesConfig) -> Mutation:
    """Inject Lanes into ``pod`` according to ``config``. Pure; never modifies ``pod``; never raises on a pod
    that passes :func:`skip_reason` (a pod that does not is returned unchanged with the reason)."""
    reason = skip_reason(pod)
    if reason is not None:
        message = skip_message(pod, reason)
        return Mutation(pod, [message] if message else [], reason)
    return mutate_admissible(pod, config)


def mutate_admissible(pod: Pod, config: LanesConfig) -> Mutation:
    """:func:`mutate` for a pod the caller already checked with :func:`skip_reason` (the admission path does,
    before resolving); skips nothing but ``already-injected``."""
    status = read_status(pod)
    app_names = [c["name"] for c in pod["spec"]["containers"]]
    if is_current(status, config, app_names):
        return Mutation(pod, [], "already-injected")
    return _Injector(pod, config, status).run()


class _Injector:
    """One mutation. Holds the copy-on-write output and what was injected (recorded in ``lanes.io/status``)."""

    def __init__(self, pod: Pod, config: LanesConfig, status: dict[str, Any] | None) -> None:
        self.config = config
        self.warnings: list[str] = []
        self.out: Pod = dict(pod)
        self.metadata: dict[str, Any] = dict(as_dict(pod.get("metadata")))
        self.spec: dict[str, Any] = dict(pod["spec"])
        self.out["metadata"] = self.metadata
        self.out["spec"] = self.spec
        self.previous = as_dict(as_dict(status).get("injected")) if status is not None else None
        self.injected: dict[str, Any] = {}
        self.app_env: list[dict[str, Any]] = []
        self.uid = helper_uid(config, pod)

    def run(self) -> Mutation:
        self._labels()
        ready = self._app_containers()
        self._init_containers(ready)
        self._readiness_gate()
        self._grace_period()
        annotations = dict(as_dict(self.metadata.get("annotations")))
        self._inbound_exclusions(annotations)
        annotations[names.ANN_STATUS] = status_of(self.config, self.injected)
        self.metadata["annotations"] = annotations
        return Mutation(self.out, self.warnings)

    # labels ------------------------------------------------------------------------------------------------

    def _labels(self) -> None:
        original = as_dict(self.metadata.get("labels"))
        labels = dict(original)
        wanted = {names.LABEL_LANE: self.config.lane, names.LABEL_APP: self.config.app}
        for key, value in wanted.items():
            old = original.get(key)
            if old is not None and old != value and self.previous is None:
                self.warnings.append(
                    clip(f"label {key}={quote(old, 30)} replaced by {quote(value, 30)}; set the {key} annotation")
                )
            labels[key] = value
        if labels != original or "labels" not in self.metadata:
            self.metadata["labels"] = labels
        self.injected["labels"] = wanted

    # app containers ----------------------------------------------------------------------------------------

    def _app_containers(self) -> ReadyProbe | None:
        """Env and preStop on every app container; returns the readiness probe handed over to the agent."""
        previous = as_dict(as_dict(self.previous).get("containers"))
        hook = _shared("pre_stop", self.config)
        self.app_env = _shared("app_env", self.config)  # shared by the containers: the output is read-only anyway
        records: dict[str, dict[str, Any]] = {}
        containers = []
        for container in self.spec["containers"]:
            name = container["name"]
            record: dict[str, Any] = {}
            before = as_dict(previous.get(name))
            updated = dict(container)
            self._env(updated, before, record)
            self._pre_stop(updated, before, record, hook)
            records[name] = record
            same = updated.get("env") is container.get("env") and updated.get("lifecycle") is container.get("lifecycle")
            containers.append(container if same else updated)
        self.spec["containers"] = containers
        self.injected["containers"] = records
        self._check_ports()
        self._app_readiness(previous, records)
        return self._readiness_handover()

    def _env(self, container: dict[str, Any], before: dict[str, Any], record: dict[str, Any]) -> None:
        name = container["name"]
        original = as_list(container.get("env"))
        ours_before = {key for key in as_list(before.get("env")) if isinstance(key, str)}
        env = list(original)
        index = _positions(_env_names(original))
        missing = []
        added = []
        for wanted in self.app_env:
            key = wanted["name"]
            position = index.get(key)
            if position is None:
                missing.append(wanted)
                added.append(key)
            elif key in ours_before:
                added.append(key)
                if not _covers(env[position], wanted):
                    env[position] = wanted
            else:
                self.warnings.append(clip(f"container {quote(name, 30)} sets {key} itself; kept (not overridden)"))
        if missing:
            env[:0] = missing
        otel = index.get(names.ENV_OTEL_RESOURCE_ATTRIBUTES)
        self._otel(container, env, None if otel is None else otel + len(missing), before, record)
        propagators = index.get(names.ENV_OTEL_PROPAGATORS)
        self._propagators(container, env, None if propagators is None else propagators + len(missing), before, record)
        if added:
            record["env"] = added
        if env != original:
            container["env"] = env

    def _otel(
        self,
        container: dict[str, Any],
        env: list[Any],
        position: int | None,
        before: dict[str, Any],
        record: dict[str, Any],
    ) -> None:
        """Merge ``lanes.lane=<lane>`` into OTEL_RESOURCE_ATTRIBUTES (W3C/OTel ``key=value,key=value``)."""
        key = names.ENV_OTEL_RESOURCE_ATTRIBUTES
        entry = f"{names.OTEL_LANE_KEY}={self.config.lane}"
        name = container["name"]
        if position is None:
            if container.get("envFrom"):
                self.warnings.append(
                    clip(f"container {quote(name, 30)} uses envFrom, which may set {key}; add {entry} to it yourself")
                )
                return
            env.append({"name": key, "value": entry})
            record["otel"] = "added"
            return
        item = env[position]
        if "valueFrom" in item or ("value" in item and not isinstance(item["value"], str)):
            self.warnings.append(clip(f"container {quote(name, 30)} sets {key} from valueFrom; add {entry} to it"))
            return
        ours = before.get("otel") in ("added", "merged")
        parts = [p for p in str(item.get("value") or "").split(",") if p.strip()]
        lane_parts = [p for p in parts if p.split("=", 1)[0].strip() == names.OTEL_LANE_KEY]
        if lane_parts and not ours:
            if any(p.strip() != entry for p in lane_parts):
                self.warnings.append(
                    clip(f"container {quote(name, 30)} sets {names.OTEL_LANE_KEY} in {key} itself; kept")
                )
            return
        kept = [p for p in parts if p.split("=", 1)[0].strip() != names.OTEL_LANE_KEY]
        value = ",".join([*kept, entry])
        record["otel"] = before.get("otel") if ours else "merged"
        if value != item.get("value"):
            env[position] = {**item, "value": value}

    def _propagators(
        self,
        container: dict[str, Any],
        env: list[Any],
        position: int | None,
        before: dict[str, Any],
        record: dict[str, Any],
    ) -> None:
        """Make the OpenTelemetry SDK propagate W3C baggage, which carries ``lanes.lane`` from hop to hop.

        Unset, ``OTEL_PROPAGATORS`` is added with the SDK's own default written out (``tracecontext,baggage``):
        explicit, it survives distributions whose default differs. Set by the user, it is never overridden; without
        ``baggage`` the user hears that lanes will not travel in baggage. With ``envFrom`` and no explicit entry
        nothing is added: an explicit entry would override whatever the ConfigMap or Secret sets, and when it sets
        nothing the SDK default already propagates baggage."""
        key = names.ENV_OTEL_PROPAGATORS
        wanted = {"name": key, "value": names.OTEL_PROPAGATORS_DEFAULT}
        if position is None:
            if container.get("envFrom") and before.get("propagators") != "added":
                return
            env.append(wanted)
            record["propagators"] = "added"
            return
        if before.get("propagators") == "added":
            record["propagators"] = "added"
            if not _covers(env[position], wanted):
                env[position] = wanted
            return
        value = env[position].get("value")
        if "valueFrom" in env[position] or not isinstance(value, str) or not value.strip():
            return  # from elsewhere (nothing to read here), or empty: the SDK treats that as unset
        if "baggage" not in {part.strip().lower() for part in value.split(",")}:
            self.warnings.append(
                clip(f"container {quote(container['name'], 30)} sets {key} without baggage: lanes will not pass"
                     " through OpenTelemetry baggage")
            )

    def _pre_stop(
        self, container: dict[str, Any], before: dict[str, Any], record: dict[str, Any], hook: dict[str, Any] | None
    ) -> None:
        lifecycle = as_dict(container.get("lifecycle"))
        current = lifecycle.get("preStop")
        ours = before.get("preStop") is not None
        if current is not None and not ours:
            self.warnings.append(
                clip(f"container {quote(container['name'], 30)} keeps its own preStop hook; Lanes' drain is not called")
            )
            return
        if hook is None:
            if current is not None:  # ours (checked above): minimal mode without drain has no hook
                rest = {key: value for key, value in lifecycle.items() if key != "preStop"}
                if rest:
                    container["lifecycle"] = rest
                else:
                    del container["lifecycle"]
            return
        record["preStop"] = "httpGet" if "httpGet" in hook else "sleep"
        if current is None or not _covers(current, hook):
            container["lifecycle"] = {**lifecycle, "preStop": hook}

    def _app_readiness(self, previous: dict[str, Any], records: dict[str, dict[str, Any]]) -> None:
        """Give the app container the agent's ``/ready/app`` probe when it has no readiness probe of its own (see
        :func:`app_readiness_probe`). ``lanes.io/status`` records it, so a later mutation of the same pod knows the
        probe is Lanes' (updated, or removed in minimal mode) rather than the user's (never touched)."""
        wanted = _shared("probe", self.config) if self.config.agent and self.config.app_port is not None else None
        containers = self.spec["containers"]
        target = self._app_container() if wanted is not None else None
        for index, container in enumerate(containers):
            name = container["name"]
            ours = as_dict(previous.get(name)).get("readinessProbe") == "agent"
            current = container.get("readinessProbe")
            chosen = target is not None and container is target  # (`is` would narrow container to target's type)
            if wanted is not None and chosen and (current is None or ours):
                records[name]["readinessProbe"] = "agent"
                if current is None or not _covers(current, wanted):
                    containers[index] = {**container, "readinessProbe": wanted}
            elif ours and current is not None:  # Lanes' probe, no longer wanted here
                containers[index] = {key: value for key, value in container.items() if key != "readinessProbe"}

    def _app_container(self) -> dict[str, Any]:
        """The container serving the app port (the one declaring it as TCP), else the first one that is not a
        mesh proxy, else the first container."""
        port = self.config.app_port
        for container in self.spec["containers"]:
            for item in as_list(container.get("ports")):
                if isinstance(item, dict) and port is not None and item.get("containerPort") == port and is_tcp(item):
                    return container
        candidates = mesh.app_containers(self.spec["containers"]) or self.spec["containers"]
        first: dict[str, Any] = candidates[0]
        return first

    def _readiness_handover(self) -> ReadyProbe | None:
        """The app's httpGet readiness probe when it probes the app port (as the app wrote it, when Istio
        rewrote it to its own agent): path, scheme, host and headers."""
        if not self.config.agent:
            return None
        container = self._app_container()
        probe = mesh.istio_original_probe(self.out, as_dict(container.get("readinessProbe")))
        http = as_dict(probe.get("httpGet"))
        if not http:
            return None
        port = probe_port(container, probe)
        if port is None or port != self.config.app_port:
            return None
        raw_path = http.get("path")
        path = raw_path if isinstance(raw_path, str) and raw_path else "/"
        scheme = str(http.get("scheme") or "HTTP").upper()
        if scheme not in ("HTTP", "HTTPS"):
            scheme = "HTTP"
        host = http.get("host")
        headers = tuple(
            (item["name"], item.get("value", ""))
            for item in map(as_dict, as_list(http.get("httpHeaders")))
            if isinstance(item.get("name"), str) and item["name"] and isinstance(item.get("value", ""), str)
        )
        self.injected["readyProbe"] = {"container": container["name"], "path": path, "scheme": scheme}
        return ReadyProbe(path, scheme, host if isinstance(host, str) and host else None, headers)

    def _check_ports(self) -> None:
        if self.config.agent and self.config.app_port is None and self.config.warmup_requests:
            self.warnings.append(
                f"{names.ANN_WARMUP_REQUESTS} needs an app port; set {names.ANN_PORT} or a containerPort"
            )

    # init containers ---------------------------------------------------------------------------------------

    def _init_containers(self, ready: ReadyProbe | None) -> None:
        original = as_list(self.spec.get("initContainers"))
        wanted: dict[str, dict[str, Any] | None] = {
            names.CONTAINER_PREWARM: (
                _shared("prewarm", self.config, self.uid, self.spec.get("restartPolicy") == "Never")
                if self.config.prewarm
                else None
            ),
            names.CONTAINER_AGENT: _shared("agent", self.config, ready, self.uid) if self.config.agent else None,
        }
        result: list[Any] = []
        present: set[str] = set()
        for container in original:
            name = container["name"]
            if name not in wanted:
                result.append(container)
                continue
            desired = wanted[name]
            if desired is None or name in present:
                continue  # no longer wanted (or a duplicate): Lanes owns these names
            present.add(name)
            result.append(container if _covers(container, desired) else desired)
        prewarm = wanted[names.CONTAINER_PREWARM]
        agent = wanted[names.CONTAINER_AGENT]
        if prewarm is not None and names.CONTAINER_PREWARM not in present:
            at = next((i for i, c in enumerate(result) if c["name"] == names.CONTAINER_AGENT), len(result))
            result.insert(at, prewarm)
        if agent is not None and names.CONTAINER_AGENT not in present:
            result.append(agent)
        self.injected["initContainers"] = [name for name, c in wanted.items() if c is not None]
        if result != original:
            if result:
                self.spec["initContainers"] = result
            else:  # only Lanes' containers were there: leave no empty list behind
                del self.spec["initContainers"]

    # pod-level ---------------------------------------------------------------------------------------------

    def _inbound_exclusions(self, annotations: dict[str, Any]) -> None:
        """Keep the agent's port out of the meshes' inbound capture (webhook/injection/mesh.py says why always).

        ``lanes.io/status`` records each annotation's value before Lanes touched it (null: absent), so a new
        agent port or minimal mode starts again from the user's own value instead of piling up ports."""
        previous = as_dict(as_dict(self.previous).get("inboundExclusions"))
        port = self.config.agent_port
        init_names = {as_dict(c).get("name") for c in as_list(self.spec.get("initContainers"))}
        record: dict[str, str | None] = {}
        for key, mesh_default in mesh.MESH_PORT_ANNOTATIONS.items():
            if key in previous:
                original = previous[key] if isinstance(previous[key], str) else None
            else:
                original = annotations.get(key)
                if original is not None and not isinstance(original, str):
                    continue  # not an annotation the API server accepts: left for it to reject
            merged = mesh.merged_ports(original, port, mesh_default) if self.config.agent else None
            if merged is None:
                if original is None:
                    annotations.pop(key, None)
                elif annotations.get(key) != original:
                    annotations[key] = original
                continue
            if annotations.get(key) != merged:
                annotations[key] = merged
            record[key] = original
            init = names.MESH_INIT_CONTAINERS[key]
            if init in init_names:
                self.warnings.append(clip(f"{init} already set up: add {port} to {key} in the pod template"))
        if record:
            self.injected["inboundExclusions"] = record

    def _readiness_gate(self) -> None:
        original = as_list(self.spec.get("readinessGates"))
        if any(as_dict(g).get("conditionType") == names.CONDITION_REGISTERED for g in original):
            return
        self.spec["readinessGates"] = [*original, {"conditionType": names.CONDITION_REGISTERED}]

    def _grace_period(self) -> None:
        config = self.config
        needed = math.ceil(config.drain + config.shutdown_budget)
        current = self.spec.get("terminationGracePeriodSeconds")
        effective = current if isinstance(current, int) and not isinstance(current, bool) else DEFAULT_GRACE_SECONDS
        if needed <= effective:
            raised_before = as_dict(self.previous).get("terminationGracePeriodSeconds")
            if raised_before is not None and raised_before == current:
                self.injected["terminationGracePeriodSeconds"] = current  # still the value Lanes set
            return
        self.spec["terminationGracePeriodSeconds"] = needed
        self.injected["terminationGracePeriodSeconds"] = needed
        self.warnings.append(
            f"terminationGracePeriodSeconds raised from {effective} to {needed}: drain "
            f"{format_duration(config.drain)} + shutdown budget {format_duration(config.shutdown_budget)}"
        )
