"""Cluster defaults, the lowest layer of the precedence chain: read once at start, from the declarations.

``ClusterDefaults`` is what the Helm chart renders into the webhook's ConfigMap and what ``lanes inject --defaults``
reads. It has one field per setting with a cluster default in webhook/contract/settings.py, in declaration order;
every field is validated when it is loaded, with the parser that validates the annotation, so a bad default stops
the webhook at start with a message naming the file and the field instead of producing broken pods later.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, create_model, field_validator
from pydantic.alias_generators import to_camel, to_snake

from webhook.contract.settings import BY_FIELD, SETTINGS, LanesConfig, Setting, scalar_text

__all__ = [
    "ClusterDefaults",
    "DefaultsError",
    "DefaultsModel",
    "defaults_from_mapping",
    "load_defaults",
    "override_defaults",
]

_CLUSTER = tuple(s for s in SETTINGS if s.default is not None)
"""The settings with a cluster default: the fields of ClusterDefaults."""
_RESOLVED = tuple(s for s in _CLUSTER if s.config)
_CONFIG_KEY = tuple(name for name in LanesConfig.model_fields if name != "resources")  # resources: from defaults
_CONFIG_CACHE_SIZE = 4096


class DefaultsError(ValueError):
    """The defaults file (or a ``--set``) is unusable; the message names the file and the field."""


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def keep(setting: Setting, value: Any) -> Any:
    """Validate one value of the defaults file with the setting's parser; what ClusterDefaults keeps of it.

    Parsed text (a lane, a header, a switch) is kept parsed; text whose parsed value is something else (a duration,
    a list of targets) is kept as the user wrote it, stripped: warnings quote it back, the helper re-parses specs.
    """
    if setting.optional and _blank(value):
        return ""
    if setting.type is float:  # a duration: YAML numbers are seconds
        value = scalar_text(value)
    parsed = setting.parse(value)
    if isinstance(value, str) and not isinstance(parsed, type(setting.default)):
        return value.strip()
    return parsed


class DefaultsModel(BaseModel):
    """What every ``ClusterDefaults`` is: configuration, validation, and the parsed values resolution starts from.

    Keys may be written snake_case (``tag_header``) or camelCase (``tagHeader``, as in Helm values). Durations are
    Go-style strings (``10s``) or bare seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _validate(cls, value: Any, info: ValidationInfo) -> Any:
        return keep(BY_FIELD[str(info.field_name)], value)

    @cached_property
    def parsed(self) -> dict[str, Any]:
        """The defaults as typed ``LanesConfig`` field values (parsed once, not per admission)."""
        return {s.field: s.typed(getattr(self, s.field)) for s in _RESOLVED}

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

    if TYPE_CHECKING:  # the fields are generated from the declarations: each is Any to a type checker

        def __getattr__(self, name: str) -> Any: ...


def _field(setting: Setting) -> tuple[Any, Any]:
    kept = setting.kept or type(setting.default)
    if isinstance(kept, type) and issubclass(kept, BaseModel):
        model: type[BaseModel] = kept
        return kept, Field(default_factory=lambda: model.model_validate(setting.default))
    return kept, setting.default


if TYPE_CHECKING:
    ClusterDefaults = DefaultsModel
else:
    ClusterDefaults = create_model(
        "ClusterDefaults",
        __base__=DefaultsModel,
        __module__=__name__,
        __doc__="Cluster-wide defaults, loaded once from the Helm ConfigMap (YAML or JSON file): one field per "
        "setting with a cluster default (webhook/contract/settings.py).",
        **{s.field: _field(s) for s in _CLUSTER},
    )


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
