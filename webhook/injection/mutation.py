"""THE pure function: ``mutate(pod, config) -> Mutation(pod, warnings)``. No I/O, no API calls.

What it injects is the product contract (docs/reference.md):

- labels ``lanes.io/lane`` and ``lanes.io/app``; annotation ``lanes.io/status`` (JSON, see :func:`status_of`);
- on every app container: ``LANES_LANE``, ``LANES_APP``, ``LANES_TAG_HEADER``, ``LANES_POD_NAME``,
  ``LANES_POD_NAMESPACE``, ``LANES_POD_IP`` (prepended, so the app's own variables may reference them as
  ``$(LANES_LANE)``), and ``lanes.lane=<lane>`` merged into ``OTEL_RESOURCE_ATTRIBUTES``; a variable the user
  already set is never overridden (warning);
- ``lanes-prewarm`` init container (when prewarm targets are configured) and the ``lanes-agent`` native sidecar,
  both appended after the user's init containers, prewarm first: user init containers keep their semantics and
  ordering (they may prepare what a dependency check needs, e.g. a mesh proxy), the dependency check runs right
  before the app, and the agent starts last, right before the app containers it serves (its startupProbe holds
  them until it listens);
- ``lifecycle.preStop`` on every app container that has none: ``httpGet`` to the agent's ``/prestop`` on the
  agent's port *number* (the kubelet resolves a named port of a hook against the hook's own container), or a
  ``sleep`` of the drain in minimal mode;
- readiness gate ``lanes.io/registered``; ``terminationGracePeriodSeconds`` raised (never lowered) so that drain
  plus the app's shutdown budget fit.

The result shares unchanged subtrees with the input (copy-on-write): the input is never modified, and the patch
builder (webhook.injection.patch) skips every subtree that is the very same object, which keeps admission well under a
millisecond for large pods. Treat both the input and the output as read-only.

Idempotent: a pod whose ``lanes.io/status`` has the same hash and container list is returned as is; a pod injected
with a different configuration is updated in place, using the previous status to tell what Lanes injected (and may
change) from what the user set (and is kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import orjson

from webhook.contract import names
from webhook.contract.durations import format_duration, format_seconds
from webhook.contract.messages import clip, quote
from webhook.contract.settings import LanesConfig
from webhook.injection.objects import as_dict, as_list

Pod = dict[str, Any]

STATUS_VERSION = 1
"""Version of the ``lanes.io/status`` format and of the injection itself; part of the idempotency check."""

DEFAULT_GRACE_SECONDS = 30  # Kubernetes' default terminationGracePeriodSeconds

def security_context() -> dict[str, Any]:
    """Pod Security ``restricted`` for an injected container (a fresh object each time: never shared)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": names.NONROOT_UID,
        "runAsGroup": names.NONROOT_UID,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


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
    would be a node port shared by every such pod), ``windows`` (the helper image is Linux), ``invalid-pod``."""
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
    if as_dict(spec.get("os")).get("name") == "windows":
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
    )
)


def _env_names(env: list[Any]) -> list[Any]:
    """The ``name`` of each env entry (None for malformed ones), at C speed for the usual all-dicts list."""
    try:
        return list(map(dict.get, env, repeat("name")))
    except TypeError:
        return [item.get("name") if isinstance(item, dict) else None for item in env]


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


def _helper_container(name: str, args: list[str], env: list[dict[str, Any]], config: LanesConfig) -> dict[str, Any]:
    return {
        "name": name,
        "image": config.helper_image,
        "imagePullPolicy": config.image_pull_policy,
        "args": args,
        "env": env,
        "resources": {kind: dict(values) for kind, values in config.resources.items()},
        "securityContext": security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def prewarm_container(config: LanesConfig) -> dict[str, Any]:
    """``lanes-prewarm``: checks every dependency target once before the app starts (env contract in
    docs/architecture.md)."""
    env = [
        {"name": names.ENV_PREWARM_TARGETS, "value": ",".join(config.prewarm)},
        {"name": names.ENV_PREWARM_POLICY, "value": config.prewarm_policy},
        {"name": names.ENV_PREWARM_DEADLINE, "value": format_seconds(config.prewarm_deadline)},
        {"name": names.ENV_PREWARM_TIMEOUT, "value": format_seconds(config.prewarm_timeout)},
    ]
    return _helper_container(names.CONTAINER_PREWARM, ["prewarm"], env, config)


def _probe(path: str, period: int, failures: int, timeout: int) -> dict[str, Any]:
    # Written with the values the API server would default, so a stored pod still "covers" the template.
    return {
        "httpGet": {"path": path, "port": names.AGENT_PORT_NAME, "scheme": "HTTP"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
        "successThreshold": 1,
    }


def agent_container(config: LanesConfig, ready: tuple[str, str] | None) -> dict[str, Any]:
    """``lanes-agent``: the native sidecar (init container with ``restartPolicy: Always``). ``ready`` is the app's
    httpGet readiness probe ``(path, scheme)`` handed over so the agent waits for it, not just for the port."""
    env = [{"name": names.ENV_AGENT_PORT, "value": str(config.agent_port)}]
    if config.app_port is not None:
        env.append({"name": names.ENV_APP_PORT, "value": str(config.app_port)})
    if ready is not None:
        env.append({"name": names.ENV_APP_READY_PATH, "value": ready[0]})
        env.append({"name": names.ENV_APP_READY_SCHEME, "value": ready[1]})
    env.append({"name": names.ENV_WARMUP, "value": format_seconds(config.warmup)})
    env.append({"name": names.ENV_WARMUP_CURVE, "value": config.warmup_curve})
    if config.warmup_requests:
        env.append({"name": names.ENV_WARMUP_REQUESTS, "value": config.warmup_requests})
    env.append({"name": names.ENV_DRAIN, "value": format_seconds(config.drain)})
    if config.offline_notify:
        env.append({"name": names.ENV_OFFLINE_NOTIFY, "value": ",".join(config.offline_notify)})
    env.extend(item for item in app_env(config) if item["name"] != names.ENV_TAG_HEADER)
    container = _helper_container(names.CONTAINER_AGENT, ["agent"], env, config)
    container["restartPolicy"] = "Always"
    container["ports"] = [{"name": names.AGENT_PORT_NAME, "containerPort": config.agent_port, "protocol": "TCP"}]
    container["startupProbe"] = _probe(names.AGENT_PATH_HEALTHZ, period=1, failures=30, timeout=1)
    container["readinessProbe"] = _probe(names.AGENT_PATH_READY, period=2, failures=2, timeout=1)
    container["livenessProbe"] = _probe(names.AGENT_PATH_HEALTHZ, period=10, failures=3, timeout=2)
    return container


def pre_stop(config: LanesConfig) -> dict[str, Any] | None:
    """The preStop handler for app containers: the agent's /prestop by port number, a sleep of the drain in
    minimal mode, or None (minimal mode with no drain: nothing to wait for)."""
    if config.agent:
        return {"httpGet": {"path": names.AGENT_PATH_PRESTOP, "port": config.agent_port, "scheme": "HTTP"}}
    seconds = math.ceil(config.drain)
    return {"sleep": {"seconds": seconds}} if seconds > 0 else None


# --- the mutation ------------------------------------------------------------------------------------------------


def mutate(pod: Pod, config: LanesConfig) -> Mutation:
    """Inject Lanes into ``pod`` according to ``config``. Pure; never modifies ``pod``; never raises on a pod
    that passes :func:`skip_reason` (a pod that does not is returned unchanged with the reason)."""
    reason = skip_reason(pod)
    if reason is not None:
        return Mutation(pod, [], reason)
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

    def run(self) -> Mutation:
        self._labels()
        ready = self._app_containers()
        self._init_containers(ready)
        self._readiness_gate()
        self._grace_period()
        annotations = dict(as_dict(self.metadata.get("annotations")))
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

    def _app_containers(self) -> tuple[str, str] | None:
        """Env and preStop on every app container; returns the readiness probe handed over to the agent."""
        previous = as_dict(as_dict(self.previous).get("containers"))
        hook = pre_stop(self.config)
        self.app_env = app_env(self.config)  # shared by the containers: the output is read-only anyway
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
        return self._readiness_handover()

    def _env(self, container: dict[str, Any], before: dict[str, Any], record: dict[str, Any]) -> None:
        name = container["name"]
        original = as_list(container.get("env"))
        ours_before = set(as_list(before.get("env")))
        env = list(original)
        present = _env_names(original)
        index = {key: present.index(key) for key in _APP_ENV_NAMES.intersection(present)}
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

    def _app_container(self) -> dict[str, Any]:
        """The container serving the app port (the one declaring it), else the first container."""
        port = self.config.app_port
        for container in self.spec["containers"]:
            for item in as_list(container.get("ports")):
                if isinstance(item, dict) and port is not None and item.get("containerPort") == port:
                    return container
        first: dict[str, Any] = self.spec["containers"][0]
        return first

    def _readiness_handover(self) -> tuple[str, str] | None:
        """The app's httpGet readiness probe as ``(path, scheme)`` when it probes the app port."""
        if not self.config.agent:
            return None
        container = self._app_container()
        http = as_dict(as_dict(container.get("readinessProbe")).get("httpGet"))
        if not http:
            return None
        port = http.get("port")
        if isinstance(port, str) and not port.isdigit():
            port = next(
                (p.get("containerPort") for p in as_list(container.get("ports")) if as_dict(p).get("name") == port),
                None,
            )
        elif isinstance(port, str):
            port = int(port)
        if port is None or port != self.config.app_port:
            return None
        raw_path = http.get("path")
        path = raw_path if isinstance(raw_path, str) and raw_path else "/"
        scheme = str(http.get("scheme") or "HTTP").upper()
        if scheme not in ("HTTP", "HTTPS"):
            scheme = "HTTP"
        self.injected["readyProbe"] = {"container": container["name"], "path": path, "scheme": scheme}
        return path, scheme

    def _check_ports(self) -> None:
        if self.config.agent and self.config.app_port is None and self.config.warmup_requests:
            self.warnings.append(
                f"{names.ANN_WARMUP_REQUESTS} needs an app port; set {names.ANN_PORT} or a containerPort"
            )

    # init containers ---------------------------------------------------------------------------------------

    def _init_containers(self, ready: tuple[str, str] | None) -> None:
        original = as_list(self.spec.get("initContainers"))
        wanted: dict[str, dict[str, Any] | None] = {
            names.CONTAINER_PREWARM: prewarm_container(self.config) if self.config.prewarm else None,
            names.CONTAINER_AGENT: agent_container(self.config, ready) if self.config.agent else None,
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
