"""Cluster defaults (the lowest layer of the precedence chain) and the resolved per-pod configuration.

``ClusterDefaults`` is what the Helm chart renders into the webhook's ConfigMap and what ``lanes inject --defaults``
reads: every field is validated when it is loaded, with the same parsers that validate annotations, so a bad
default stops the webhook at start with a message naming the file and the field instead of producing broken pods
later. ``LanesConfig`` is the fully resolved, typed configuration of one pod: the only input of the mutation
besides the pod itself, and (as JSON) the ``config`` recorded in the ``lanes.io/status`` annotation.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel, to_snake

from helper.specs import parse_curve, parse_targets, parse_urls, parse_warmup_requests
from webhook.contract.durations import parse_duration
from webhook.contract.values import (
    PrewarmPolicy,
    parse_agent_port,
    parse_lane,
    parse_policy,
    parse_switch,
    parse_tag_header,
)

_QUANTITY = re.compile(r"[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?")


class DefaultsError(ValueError):
    """The defaults file (or a ``--set``) is unusable; the message names the file and the field."""


def _scalar_text(value: Any) -> Any:
    """YAML turns ``drain: 10`` into an int; durations and specs are text, so accept numbers as their text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


class HelperResources(BaseModel):
    """Requests and limits of the injected containers (``resources`` of lanes-prewarm and lanes-agent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: dict[str, str] = Field(default_factory=lambda: {"cpu": "10m", "memory": "32Mi"})
    limits: dict[str, str] = Field(default_factory=lambda: {"memory": "64Mi"})

    @field_validator("requests", "limits", mode="before")
    @classmethod
    def _quantities(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        checked: dict[str, str] = {}
        for name, quantity in value.items():
            text = str(_scalar_text(quantity))
            if not _QUANTITY.fullmatch(text):
                raise ValueError(f"'{name}: {text}' is not a Kubernetes quantity; e.g. 10m or 32Mi")
            checked[str(name)] = text
        return checked


class ClusterDefaults(BaseModel):
    """Cluster-wide defaults, loaded once from the Helm ConfigMap (YAML or JSON file).

    Keys may be written snake_case (``tag_header``) or camelCase (``tagHeader``, as in Helm values). Durations are
    Go-style strings (``10s``) or bare seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    own_namespace: str = "lanes-system"
    helper_image: str = "ghcr.io/lanes-io/lanes-helper:0.1.0"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    agent_port: int = 15400
    tag_header: str = "x-lane"
    lane: str = "base"
    agent: bool = True
    warmup: str = "0s"
    warmup_curve: str = "linear"
    warmup_requests: str = ""
    register_delay: str = "0s"
    prewarm: str = ""
    prewarm_policy: str = "warn"
    prewarm_deadline: str = "60s"
    prewarm_timeout: str = "5s"
    drain: str = "10s"
    offline_notify: str = ""
    shutdown_budget: str = "15s"
    resources: HelperResources = Field(default_factory=HelperResources)

    @field_validator(
        "warmup", "register_delay", "drain", "shutdown_budget", "prewarm_deadline", "prewarm_timeout",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: Any) -> Any:
        value = _scalar_text(value)
        parse_duration(value)
        return value.strip() if isinstance(value, str) else value

    @field_validator("prewarm_deadline", "prewarm_timeout")
    @classmethod
    def _positive(cls, value: str) -> str:
        if parse_duration(value) == 0:
            raise ValueError(f"'{value}': must be more than 0; e.g. 5s")
        return value

    @field_validator("lane", mode="before")
    @classmethod
    def _lane(cls, value: Any) -> str:
        return parse_lane(value)

    @field_validator("tag_header", mode="before")
    @classmethod
    def _tag_header(cls, value: Any) -> str:
        return parse_tag_header(value)

    @field_validator("agent", mode="before")
    @classmethod
    def _agent(cls, value: Any) -> bool:
        return parse_switch(value)

    @field_validator("agent_port", mode="before")
    @classmethod
    def _agent_port(cls, value: Any) -> int:
        return parse_agent_port(value)

    @field_validator("prewarm_policy", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> str:
        return parse_policy(value)

    @field_validator("warmup_curve", mode="before")
    @classmethod
    def _curve(cls, value: Any) -> Any:
        parse_curve(value)
        return value.strip()

    @field_validator("warmup_requests", "prewarm", "offline_notify", mode="before")
    @classmethod
    def _optional_spec(cls, value: Any, info: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return ""
        parser = {"warmup_requests": parse_warmup_requests, "prewarm": parse_targets,
                  "offline_notify": parse_urls}[info.field_name]
        parser(value)
        return value.strip()

    @field_validator("own_namespace", "helper_image", mode="before")
    @classmethod
    def _nonempty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value.strip() if isinstance(value, str) else value

    @cached_property
    def parsed(self) -> dict[str, Any]:
        """The defaults as typed ``LanesConfig`` field values (parsed once, not per admission)."""
        return {
            "lane": self.lane,
            "tag_header": self.tag_header,
            "agent": self.agent,
            "agent_port": self.agent_port,
            "warmup": parse_duration(self.warmup),
            "warmup_curve": self.warmup_curve,
            "warmup_requests": self.warmup_requests or None,
            "register_delay": parse_duration(self.register_delay),
            "prewarm": tuple(t.raw for t in parse_targets(self.prewarm)) if self.prewarm else (),
            "prewarm_policy": self.prewarm_policy,
            "prewarm_deadline": parse_duration(self.prewarm_deadline),
            "prewarm_timeout": parse_duration(self.prewarm_timeout),
            "drain": parse_duration(self.drain),
            "offline_notify": _split(self.offline_notify),
            "shutdown_budget": parse_duration(self.shutdown_budget),
            "helper_image": self.helper_image,
            "image_pull_policy": self.image_pull_policy,
            "resources": self.resources.model_dump(),
        }


    @cached_property
    def _configs(self) -> dict[tuple[Any, ...], LanesConfig]:
        return {}

    def config(self, values: dict[str, Any]) -> LanesConfig:
        """The LanesConfig for ``values`` (``parsed`` with per-pod overrides), shared between pods that resolve
        to the same values: its hash and JSON are then computed once per workload, not once per pod."""
        key = tuple(map(values.__getitem__, _CONFIG_KEY))
        cached = self._configs.get(key)
        if cached is None:
            if len(self._configs) >= _CONFIG_CACHE_SIZE:
                self._configs.clear()
            cached = self._configs[key] = LanesConfig(**values)
        return cached


def _split(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


class LanesConfig(BaseModel):
    """The resolved configuration of one pod: every value typed, validated and final.

    Durations are seconds. ``app_port`` is a number (a named ``lanes.io/port`` is resolved against the pod's
    container ports during resolution) or None when the pod declares no port. Recorded verbatim in
    ``lanes.io/status``; its :attr:`hash` is what makes injection idempotent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lane: str
    app: str
    tag_header: str = "x-lane"
    agent: bool = True
    agent_port: int = 15400
    app_port: int | None = None
    warmup: float = 0.0
    warmup_curve: str = "linear"
    warmup_requests: str | None = None
    register_delay: float = 0.0
    prewarm: tuple[str, ...] = ()
    prewarm_policy: PrewarmPolicy = "warn"
    prewarm_deadline: float = 60.0
    prewarm_timeout: float = 5.0
    drain: float = 10.0
    offline_notify: tuple[str, ...] = ()
    shutdown_budget: float = 15.0
    helper_image: str = "ghcr.io/lanes-io/lanes-helper:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}
    )

    @cached_property
    def as_json(self) -> dict[str, Any]:
        """Plain JSON form (lists, not tuples) as recorded in ``lanes.io/status``."""
        return self.model_dump(mode="json")

    @cached_property
    def json_text(self) -> str:
        """Compact JSON of :attr:`as_json`, keys in field order (the ``config`` of ``lanes.io/status``)."""
        return orjson.dumps(self.as_json).decode()

    @cached_property
    def hash(self) -> str:
        """A short digest of the whole configuration: equal hashes mean an identical injection."""
        canonical = orjson.dumps(self.as_json, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:16]


_CONFIG_KEY = tuple(name for name in LanesConfig.model_fields if name != "resources")  # resources: from defaults
_CONFIG_CACHE_SIZE = 4096


def _field_names() -> list[str]:
    return list(ClusterDefaults.model_fields)


def _describe(error: ValidationError, source: str) -> str:
    """One line per problem: ``<source>: <field>: <what is wrong>``."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            key = str(item["loc"][-1]).replace("-", "_")
            names = _field_names() + [to_camel(n) for n in _field_names()]
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(_field_names())}"
            message = "unknown field" + hint
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{source}: {field}: {message}")
    return "\n".join(lines)


def defaults_from_mapping(data: Any, source: str = "defaults") -> ClusterDefaults:
    """Validate a mapping of defaults; errors raise :class:`DefaultsError` naming ``source`` and the field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DefaultsError(f"{source}: must be a mapping of field: value, got {type(data).__name__}")
    try:
        return ClusterDefaults.model_validate(data)
    except ValidationError as exc:
        raise DefaultsError(_describe(exc, source)) from None


def override_defaults(
    defaults: ClusterDefaults, pairs: Sequence[tuple[str, Any]], source: str = "--set"
) -> ClusterDefaults:
    """``defaults`` with ``key=value`` overrides (``drain``, ``tag-header``, ``tagHeader``,
    ``resources.requests.cpu``), validated like the file; errors name ``source`` and the field."""
    if not pairs:
        return defaults
    merged = defaults.model_dump()
    for key, value in pairs:
        path = [to_snake(part.replace("-", "_")) if i == 0 else part for i, part in enumerate(key.split("."))]
        target = merged
        for part in path[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[path[-1]] = value
    return defaults_from_mapping(merged, source)


def load_defaults(path: str | Path | None) -> ClusterDefaults:
    """Read the defaults file; a missing path means built-in defaults. Errors name the file and the field."""
    if path is None:
        return ClusterDefaults()
    import yaml  # JSON is read by the YAML parser too

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DefaultsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DefaultsError(f"{path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DefaultsError(f"{path}:{where}: invalid YAML/JSON: {problem}") from None
    return defaults_from_mapping(data, str(path))
