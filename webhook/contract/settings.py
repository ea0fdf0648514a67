"""Every setting of Lanes, declared once, and ``LanesConfig``, the resolved configuration of one pod.

A :class:`Setting` says everything there is to know about one knob: its ``LanesConfig`` field and type, its
default as a user writes it (``"10s"``), the parser that reads what users write (annotation, defaults file,
``--set``), the ``lanes.io/*`` annotation that sets it per pod, the helper environment variable it becomes, its
Helm value and a one-line doc. Everything else is derived from :data:`SETTINGS`:

- the resolution table (:data:`ANNOTATION_SETTINGS`, :data:`BY_ANNOTATION`) webhook/injection/resolve.py walks,
  and :data:`SETTING_ANNOTATIONS` / :data:`KNOWN_ANNOTATIONS` (also readable from webhook/contract/names.py);
- ``ClusterDefaults`` (webhook/contract/defaults.py): one field per setting with a cluster default, in
  declaration order, with its default and its validation;
- the defaults of ``LanesConfig`` below (its fields keep their annotations, so mypy knows their types);
- the tables of docs/reference.md and docs/install.md between ``<!-- ...:start -->`` and ``<!-- ...:end -->``
  markers, written by ``python -m devtools.docs``.

tests/webhook_unit/test_settings_declared.py holds the rest to the declarations: LanesConfig's fields, types and
defaults, charts/lanes/values.yaml and values.schema.json, helper/env.py and the helper's own defaults, the docs.

How a default is kept and read. The defaults file keeps what the user wrote, validated: a duration stays text
(``"10s"``, which warnings quote back), a lane or a switch is kept parsed. The ``LanesConfig`` value is
``parse(kept)``. Settings typed ``float`` are durations: a YAML number there is seconds. A setting whose default is
``""`` may be left empty, which means none (``None``, or ``()`` for a list).

Adding a setting is one declaration plus its use:

1. declare it in :data:`SETTINGS` (its place there is its place in ``ClusterDefaults`` and in the docs tables); an
   ``ANN_*`` constant in names.py is only needed where code names the annotation;
2. give ``LanesConfig`` the typed field, ``name: type = _default("name")`` (its place there is its place in the
   JSON of ``lanes.io/status``);
3. with a Helm value: add it under ``defaults`` in charts/lanes/values.yaml and values.schema.json (the chart
   renders every ``defaults.*`` key into the ConfigMap under its snake_case name);
4. with a helper variable: add the name to helper/env.py and read it in helper/config.py;
5. ``python -m devtools.docs`` rewrites the generated tables; tests/webhook_unit/test_resolve.py wants a bad value
   for every annotation (``BAD_VALUES``);
6. use ``config.<field>`` (webhook/injection/mutation.py).

Resolution, validation, warnings, the defaults file, ``--set`` and the docs follow from step 1;
tests/webhook_unit/test_settings_declared.py names whatever steps 2-5 missed.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import NoneType
from typing import Any, Final, Literal, get_args, get_origin

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from helper import env
from webhook.contract import names
from webhook.contract.durations import parse_duration
from webhook.contract.values import (
    PrewarmPolicy,
    parse_agent_port,
    parse_app,
    parse_curve_text,
    parse_lane,
    parse_nonempty,
    parse_policy,
    parse_port,
    parse_positive_duration,
    parse_registry,
    parse_secret_name,
    parse_switch,
    parse_tag_header,
    parse_target_list,
    parse_uid,
    parse_url_list,
    parse_warmup_requests_text,
)


def as_is(value: Any) -> Any:
    """The parser of a setting validated by its type alone (an image pull policy, the resources)."""
    return value


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting. Only ``field``, ``type``, ``default``, ``parse`` and ``doc`` are always given."""

    field: str
    """The ``LanesConfig`` field, and the ``ClusterDefaults`` field (also in the defaults file, snake_case)."""
    type: Any
    """The ``LanesConfig`` type, e.g. ``float`` (seconds) or ``tuple[str, ...]``."""
    default: Any
    """The cluster default as a user writes it (``"10s"``, ``True``, ``15400``; ``""``: none). None: there is no
    cluster default, the value is computed per pod (``computed`` says how)."""
    parse: Callable[[Any], Any]
    """What a user wrote -> the ``LanesConfig`` value, or ValueError ``'<value>': <problem>; e.g. <example>``."""
    doc: str
    """What it does, one line (docs tables)."""
    annotation: str | None = None
    """The ``lanes.io/*`` annotation that sets it per pod, workload or namespace."""
    env: str | None = None
    """The helper environment variable (helper/env.py) the resolved value is passed in."""
    helm: str | None = None
    """Where the Helm chart takes the default from, e.g. ``defaults.drain`` (charts/lanes/values.yaml)."""
    format: str = ""
    """What the annotation accepts (docs)."""
    example: str = ""
    """Good annotation values (docs)."""
    computed: str = ""
    """How the value is found when there is no cluster default (docs)."""
    kept: Any = None
    """The type ``ClusterDefaults`` keeps the default as, when not the default's own type (a Literal, a model)."""
    config: bool = True
    """False: a ``ClusterDefaults`` field only, not part of a pod's ``LanesConfig``."""

    @property
    def optional(self) -> bool:
        """Whether the default may be empty, meaning none."""
        return isinstance(self.default, str) and self.default == ""

    @property
    def none(self) -> Any:
        """The ``LanesConfig`` value of an empty optional setting: None, or an empty tuple for a list."""
        return None if NoneType in get_args(self.type) else (get_origin(self.type) or self.type)()

    def typed(self, kept: Any) -> Any:
        """The ``LanesConfig`` value of a default as ``ClusterDefaults`` keeps it (or as declared)."""
        if isinstance(kept, BaseModel):
            return kept.model_dump()
        if self.optional and kept == "":
            return self.none
        return self.parse(kept)


# --- the declarations ----------------------------------------------------------------------------------------

_DURATION = "Go duration or bare seconds, 0..24h"

_QUANTITY = re.compile(r"[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?")


def scalar_text(value: Any) -> Any:
    """YAML turns ``drain: 10`` into an int; durations and quantities are text, so accept numbers as their text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


class HelperResources(BaseModel):
    """Requests and limits of the injected containers (``resources`` of lanes-prewarm and lanes-agent); a side
    left out keeps its declared default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: dict[str, str] = Field(default_factory=lambda: dict(BY_FIELD["resources"].default["requests"]))
    limits: dict[str, str] = Field(default_factory=lambda: dict(BY_FIELD["resources"].default["limits"]))

    @field_validator("requests", "limits", mode="before")
    @classmethod
    def _quantities(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        checked: dict[str, str] = {}
        for name, quantity in value.items():
            text = str(scalar_text(quantity))
            if not _QUANTITY.fullmatch(text):
                raise ValueError(f"'{name}: {text}' is not a Kubernetes quantity; e.g. 10m or 32Mi")
            checked[str(name)] = text
        return checked


SETTINGS: Final[tuple[Setting, ...]] = (
    # --- the installation: set by the chart or for the whole cluster -----------------------------------------
    Setting(
        "own_namespace", str, "lanes-system", parse_nonempty, config=False,
        doc="the webhook's namespace: its pods are never injected (the chart sets the release namespace)",
    ),
    Setting(
        "helper_image", str, "ghcr.io/lanes-io/lanes-helper:0.1.0", parse_nonempty, helm="image.helper",
        doc="image of `lanes-prewarm` and `lanes-agent` (the chart: `repository:tag`, the tag defaulting to its"
        " `appVersion`, or `repository@digest`)",
    ),
    Setting(
        "image_pull_policy", str, "IfNotPresent", as_is, kept=Literal["Always", "IfNotPresent", "Never"],
        helm="image.helper.pullPolicy", doc="their `imagePullPolicy`",
    ),
    Setting(
        "agent_port", int, 15400, parse_agent_port, env=env.AGENT_PORT, helm="defaults.agentPort",
        doc="the agent's port; 15000-15090 is refused (Istio)",
    ),
    Setting(
        "tag_header", str, "x-lane", parse_tag_header, helm="defaults.tagHeader",
        doc="`LANES_TAG_HEADER` of app containers: the traffic tag header apps propagate (lowercased)",
    ),
    # --- per pod: annotations -------------------------------------------------------------------------------
    Setting(
        "lane", str, "base", parse_lane, annotation=names.ANN_LANE, env=env.LANE, helm="defaults.lane",
        doc="the pod's lane: its `lanes.io/lane` label, `LANES_LANE`, `lanes.lane` in `OTEL_RESOURCE_ATTRIBUTES`",
        format="DNS label: `a-z`, `0-9`, `-`, at most 63", example="`gray`",
    ),
    Setting(
        "app", str, None, parse_app, annotation=names.ANN_APP, env=env.APP,
        doc="the logical service name: the `lanes.io/app` label and `LANES_APP`",
        computed="`app.kubernetes.io/name` label, then `app` label, then the owning workload's name, then the"
        " pod's `generateName`/`name`",
        format="label value: `A-Z a-z 0-9 - _ .`, at most 63", example="`checkout`",
    ),
    Setting(
        "agent", bool, True, parse_switch, annotation=names.ANN_AGENT, helm="defaults.agent",
        doc="`false`: minimal mode, no `lanes-agent` sidecar; `preStop` is a plain `sleep` of the drain",
        format='`"true"` \\| `"false"` (any case)', example='`"false"`',
    ),
    Setting(
        "app_port", int | None, None, parse_port, annotation=names.ANN_PORT, env=env.APP_PORT,
        doc="the app's port: what the agent waits for and warms up",
        computed="first TCP `containerPort` of the first container that is not a mesh proxy (`istio-proxy`,"
        " `linkerd-proxy`, ...); failing that, the port of its httpGet/tcpSocket readiness probe",
        format="port number 1..65535, or the name of a container port (resolved to its number)",
        example="`8080`, `http`",
    ),
    Setting(
        "warmup", float, "0s", parse_duration, annotation=names.ANN_WARMUP, env=env.WARMUP, helm="defaults.warmup",
        doc="traffic ramp window after the pod turns ready (`0s`: no ramp)",
        format=_DURATION, example="`120s`, `2m`",
    ),
    Setting(
        "warmup_curve", str, "linear", parse_curve_text, annotation=names.ANN_WARMUP_CURVE, env=env.WARMUP_CURVE,
        helm="defaults.warmupCurve", doc="shape of the traffic ramp",
        format="`linear` \\| `k=<exponent>` \\| `aggression=<a>` (k = 1/a), optional `,min=<percent>` (default"
        " `10%`)",
        example="`k=2`, `aggression=1.5,min=5%`",
    ),
    Setting(
        "warmup_requests", str | None, "", parse_warmup_requests_text, annotation=names.ANN_WARMUP_REQUESTS,
        env=env.WARMUP_REQUESTS, helm="defaults.warmupRequests",
        doc="requests the agent sends the app before it reports ready (self warm-up)",
        format="comma list of `[METHOD] PATH [xCOUNT] [cCONCURRENCY]`", example="`GET /api/items x50 c4, /healthz x5`",
    ),
    Setting(
        "register_delay", float, "0s", parse_duration, annotation=names.ANN_REGISTER_DELAY,
        env=env.REGISTER_DELAY, helm="defaults.registerDelay",
        doc="extra hold of the `lanes.io/registered` readiness gate after all containers are ready",
        format=_DURATION, example="`10s`",
    ),
    Setting(
        "prewarm", tuple[str, ...], "", parse_target_list, annotation=names.ANN_PREWARM, env=env.PREWARM_TARGETS,
        helm="defaults.prewarm", doc="dependencies `lanes-prewarm` checks before the app starts",
        format="comma list of `tcp://host:port`, `dns://host`, `http(s)://host[:port]/path[#status]`",
        example="`tcp://postgres.db:5432,https://auth.shop.svc/healthz#200`",
    ),
    Setting(
        "prewarm_policy", PrewarmPolicy, "warn", parse_policy, annotation=names.ANN_PREWARM_POLICY,
        env=env.PREWARM_POLICY, helm="defaults.prewarmPolicy", doc="what unreachable prewarm targets do",
        format="`warn` (never block start) \\| `require` (init fails until reachable, bounded)", example="`require`",
    ),
    Setting(
        "prewarm_deadline", float, "60s", parse_positive_duration, env=env.PREWARM_DEADLINE,
        helm="defaults.prewarmDeadline", doc="overall deadline of `lanes-prewarm` (> 0)",
    ),
    Setting(
        "prewarm_timeout", float, "5s", parse_positive_duration, env=env.PREWARM_TIMEOUT,
        helm="defaults.prewarmTimeout", doc="per-attempt timeout of each prewarm target (> 0)",
    ),
    Setting(
        "drain", float, "10s", parse_duration, annotation=names.ANN_DRAIN, env=env.DRAIN, helm="defaults.drain",
        doc="keep serving this long after deregistration, before the app gets SIGTERM",
        format=_DURATION, example="`20s`",
    ),
    Setting(
        "offline_notify", tuple[str, ...], "", parse_url_list, annotation=names.ANN_OFFLINE_NOTIFY,
        env=env.OFFLINE_NOTIFY, helm="defaults.offlineNotify",
        doc="receivers of the agent's going-offline broadcast",
        format="comma list of `http(s)://host[:port]/path`", example="`http://registry.infra:8080/offline`",
    ),
    Setting(
        "registry", str | None, "", parse_registry, annotation=names.ANN_REGISTRY, env=env.REGISTRY,
        helm="defaults.registry",
        doc="an external registry the agent puts the pod into once ready (after the register delay), ramps and"
        " takes it out of first at preStop (docs/registries.md)",
        format="`nacos://host[:port][/context]?service=&group=&namespace=&cluster=&mode=register\\|manage&port="
        "&weight=&api=v2\\|v3` (`service` defaults to `lanes.io/app`)",
        example="`nacos://nacos.infra:8848?service=orders&mode=manage`",
    ),
    Setting(
        "registry_secret", str | None, "", parse_secret_name, annotation=names.ANN_REGISTRY_SECRET,
        helm="defaults.registrySecret",
        doc="Secret in the pod's namespace with the registry's `username` + `password` or `accessToken`; the agent"
        " gets them as env from the Secret, never in clear",
        format="Secret name", example="`nacos-credentials`",
    ),
    # --- the installation, continued -------------------------------------------------------------------------
    Setting(
        "shutdown_budget", float, "15s", parse_duration, helm="defaults.shutdownBudget",
        doc="the app's own shutdown time after SIGTERM: `terminationGracePeriodSeconds` is raised to"
        " `ceil(drain + shutdown_budget)` when smaller",
    ),
    Setting(
        "resources", dict[str, dict[str, str]],
        {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        as_is, kept=HelperResources, helm="defaults.resources",
        doc="requests and limits of both injected containers",
    ),
    Setting(
        "run_as_user", int | None, "", parse_uid, kept=int | str, helm="defaults.runAsUser",
        doc="`runAsUser`/`runAsGroup` of both injected containers; empty: none, the image's numeric `USER 65532`"
        " runs (or the UID OpenShift's restricted-v2 assigns), except in pods whose own `runAsUser` is 0",
    ),
)
"""Every setting, in ``ClusterDefaults`` order (which its validation messages follow)."""

BY_FIELD: Final[Mapping[str, Setting]] = {s.field: s for s in SETTINGS}
ANNOTATION_SETTINGS: Final = tuple(s for s in SETTINGS if s.annotation)
"""The resolution table: each setting a ``lanes.io/*`` annotation sets, resolved pod > workload > namespace >
cluster default."""
BY_ANNOTATION: Final[Mapping[str, Setting]] = {str(s.annotation): s for s in ANNOTATION_SETTINGS}
SETTING_ANNOTATIONS: Final = tuple(BY_ANNOTATION)
"""Annotations a user sets."""
KNOWN_ANNOTATIONS: Final = frozenset((*SETTING_ANNOTATIONS, names.ANN_STATUS))
"""Every ``lanes.io/*`` annotation key that is not a typo."""


RECORDED_WHEN_SET: Final = ("registry", "registry_secret", "run_as_user")
"""Settings added after the first ``lanes.io/status`` format, recorded in it only when set."""


def _default(field: str) -> Any:
    """The ``LanesConfig`` default of ``field``: its declared default, parsed (a fresh copy when mutable)."""
    setting = BY_FIELD[field]
    value = setting.typed(setting.default) if setting.default is not None else None
    if isinstance(value, dict | list):
        return Field(default_factory=lambda: copy.deepcopy(value))
    return value


class LanesConfig(BaseModel):
    """The resolved configuration of one pod: every value typed, validated and final.

    Durations are seconds. ``app_port`` is a number (a named ``lanes.io/port`` is resolved against the pod's
    container ports during resolution) or None when the pod declares no port. Recorded verbatim in
    ``lanes.io/status``, fields in this order; its :attr:`hash` is what makes injection idempotent. ``lane`` and
    ``app`` have no default: a pod's identity is always resolved.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lane: str
    app: str
    tag_header: str = _default("tag_header")
    agent: bool = _default("agent")
    agent_port: int = _default("agent_port")
    app_port: int | None = _default("app_port")
    warmup: float = _default("warmup")
    warmup_curve: str = _default("warmup_curve")
    warmup_requests: str | None = _default("warmup_requests")
    register_delay: float = _default("register_delay")
    prewarm: tuple[str, ...] = _default("prewarm")
    prewarm_policy: PrewarmPolicy = _default("prewarm_policy")
    prewarm_deadline: float = _default("prewarm_deadline")
    prewarm_timeout: float = _default("prewarm_timeout")
    drain: float = _default("drain")
    offline_notify: tuple[str, ...] = _default("offline_notify")
    registry: str | None = _default("registry")
    registry_secret: str | None = _default("registry_secret")
    shutdown_budget: float = _default("shutdown_budget")
    helper_image: str = _default("helper_image")
    image_pull_policy: str = _default("image_pull_policy")
    resources: dict[str, dict[str, str]] = _default("resources")
    run_as_user: int | None = _default("run_as_user")

    @cached_property
    def as_json(self) -> dict[str, Any]:
        """Plain JSON form (lists, not tuples) as recorded in ``lanes.io/status``. Fields in
        :data:`RECORDED_WHEN_SET` are left out while unset, so pods that do not use them keep the status (and
        hash) earlier releases wrote."""
        data = self.model_dump(mode="json")
        for name in RECORDED_WHEN_SET:
            if data.get(name) is None:
                data.pop(name, None)
        return data

    @cached_property
    def json_text(self) -> str:
        """Compact JSON of :attr:`as_json`, keys in field order (the ``config`` of ``lanes.io/status``)."""
        return orjson.dumps(self.as_json).decode()

    @cached_property
    def hash(self) -> str:
        """A short digest of the whole configuration: equal hashes mean an identical injection."""
        canonical = orjson.dumps(self.as_json, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:16]
