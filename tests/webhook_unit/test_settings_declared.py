"""Each setting is declared once (webhook/contract/settings.py). What cannot be derived from the declarations is
held to them here: LanesConfig's typed fields, ClusterDefaults, charts/lanes/values.yaml and values.schema.json,
helper/env.py and the helper's own defaults, and the generated tables in docs/."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from pydantic.alias_generators import to_snake

import helper.env as helper_env
from devtools import docs
from helper.config import agent_config, prewarm_config
from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults, defaults_from_mapping
from webhook.contract.durations import format_seconds
from webhook.contract.settings import (
    ANNOTATION_SETTINGS,
    BY_ANNOTATION,
    KNOWN_ANNOTATIONS,
    SETTING_ANNOTATIONS,
    SETTINGS,
    LanesConfig,
    Setting,
)
from webhook.injection import resolve

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lanes"
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
APP_VERSION = str(yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))["appVersion"])

CLUSTER = [s for s in SETTINGS if s.default is not None]
HELM = [s for s in SETTINGS if s.helm]
IDENTITY = {"lane", "app"}  # LanesConfig refuses to be built without them: a pod's identity is always resolved


def _typed_default(setting: Setting) -> Any:
    return None if setting.default is None else setting.typed(setting.default)


def _examples(setting: Setting) -> list[str]:
    """The documented example values: each ``...`` of ``example``, without the YAML quotes of ``"false"``."""
    return [text.strip('"') for text in re.findall(r"`([^`]+)`", setting.example)]


# --- the declarations themselves -------------------------------------------------------------------------------


def test_declarations_are_unique_and_complete() -> None:
    fields = [s.field for s in SETTINGS]
    assert len(fields) == len(set(fields))
    annotations = [s.annotation for s in ANNOTATION_SETTINGS]
    assert len(annotations) == len(set(annotations))
    for setting in SETTINGS:
        assert setting.doc and "\n" not in setting.doc and "|" not in setting.doc.replace("\\|", ""), setting.field
        if setting.default is None:
            assert setting.computed, f"{setting.field}: no cluster default, so say how the value is found"
        if setting.annotation:
            assert setting.annotation.startswith(names.PREFIX)
            assert setting.format and _examples(setting), f"{setting.field}: the annotation table needs both"


def test_every_annotation_constant_is_declared_and_the_known_set_is_derived() -> None:
    constants = {v for k, v in vars(names).items() if k.startswith("ANN_") and v != names.ANN_STATUS}
    assert constants <= set(BY_ANNOTATION)  # a new setting needs no constant unless code names its annotation
    assert names.SETTING_ANNOTATIONS == SETTING_ANNOTATIONS
    assert names.KNOWN_ANNOTATIONS == KNOWN_ANNOTATIONS == {*BY_ANNOTATION, names.ANN_STATUS}
    assert resolve.SETTINGS == ANNOTATION_SETTINGS
    assert resolve.SETTINGS_BY_ANNOTATION is BY_ANNOTATION


@pytest.mark.parametrize("setting", ANNOTATION_SETTINGS, ids=lambda s: s.annotation)
def test_documented_examples_and_defaults_are_valid_annotation_values(setting: Setting) -> None:
    for example in _examples(setting):
        resolve.parse_annotation(str(setting.annotation), example)
    if isinstance(setting.default, str) and setting.default:
        assert resolve.parse_annotation(str(setting.annotation), setting.default) == _typed_default(setting)


# --- LanesConfig and ClusterDefaults -----------------------------------------------------------------------------


def test_lanes_config_has_exactly_the_declared_fields_types_and_defaults() -> None:
    fields = LanesConfig.model_fields
    declared = {s.field for s in SETTINGS if s.config}
    assert set(fields) == declared, f"LanesConfig and the declarations differ in {set(fields) ^ declared}"
    for setting in SETTINGS:
        if not setting.config:
            continue
        info = fields[setting.field]
        assert info.annotation == setting.type, setting.field
        if setting.field in IDENTITY:
            assert info.is_required(), setting.field
        else:
            assert info.get_default(call_default_factory=True) == _typed_default(setting), setting.field
    assert [name for name, info in fields.items() if info.is_required()] == ["lane", "app"]


def test_cluster_defaults_has_a_field_per_setting_with_a_default_in_declaration_order() -> None:
    assert list(ClusterDefaults.model_fields) == [s.field for s in CLUSTER]
    built_in = ClusterDefaults()
    assert built_in.model_dump() == {s.field: s.default for s in CLUSTER}
    assert built_in.parsed == {s.field: _typed_default(s) for s in CLUSTER if s.config}


@pytest.mark.parametrize("setting", CLUSTER, ids=lambda s: s.field)
def test_declared_defaults_are_what_loading_them_keeps(setting: Setting) -> None:
    # written as a user would write it, and valid: loading the default changes nothing
    loaded = defaults_from_mapping({setting.field: copy.deepcopy(setting.default)})
    assert loaded == ClusterDefaults()


# --- charts/lanes/values.yaml ------------------------------------------------------------------------------------


def _at(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _chart_default(values: dict[str, Any], setting: Setting) -> Any:
    """What the chart renders into the defaults ConfigMap for ``setting`` (templates/configmap.yaml)."""
    if setting.helm == "image.helper":  # lanes.image: repository@digest, or repository:tag (default appVersion)
        image = values["image"]["helper"]
        if image.get("digest"):
            return f"{image['repository']}@{image['digest']}"
        return f"{image['repository']}:{image.get('tag') or APP_VERSION}"
    return _at(values, str(setting.helm))


def values_disagreements(values: dict[str, Any]) -> list[str]:
    """Every way ``values`` (a parsed values.yaml) disagrees with the declarations."""
    problems = []
    declared = {str(s.helm).removeprefix("defaults."): s for s in HELM if str(s.helm).startswith("defaults.")}
    for key in sorted(set(values["defaults"]) ^ set(declared)):
        problems.append(f"defaults.{key}: " + ("not declared" if key not in declared else "missing in values.yaml"))
    for key, setting in declared.items():
        if to_snake(key) != setting.field:  # the chart writes snakecase(key) into the ConfigMap
            problems.append(f"defaults.{key}: becomes {to_snake(key)} in the ConfigMap, not {setting.field}")
    for setting in HELM:
        try:
            value = _chart_default(values, setting)
        except KeyError:
            problems.append(f"{setting.helm}: missing in values.yaml")
            continue
        if value != setting.default or type(value) is not type(setting.default):
            problems.append(f"{setting.helm}: {value!r} in values.yaml, declared {setting.default!r}")
    return problems


def test_chart_values_are_the_declared_defaults() -> None:
    assert values_disagreements(VALUES) == []


def test_a_default_changed_in_values_yaml_only_is_caught() -> None:
    changed = copy.deepcopy(VALUES)
    changed["defaults"]["drain"] = "20s"
    changed["defaults"]["agent"] = "true"
    changed["defaults"]["extra"] = 1
    changed["image"]["helper"]["pullPolicy"] = "Always"
    assert values_disagreements(changed) == [
        "defaults.extra: not declared",
        "image.helper.pullPolicy: 'Always' in values.yaml, declared 'IfNotPresent'",
        "defaults.agent: 'true' in values.yaml, declared True",
        "defaults.drain: '20s' in values.yaml, declared '10s'",
    ]


# --- charts/lanes/values.schema.json -----------------------------------------------------------------------------


def _schema_at(dotted: str) -> dict[str, Any]:
    node = SCHEMA
    for part in dotted.split("."):
        if part not in node.get("properties", {}):
            pytest.fail(f"{dotted}: not in charts/lanes/values.schema.json")
        node = node["properties"][part]
    return node


_JSON_TYPES = {"string": str, "integer": int, "number": int | float, "boolean": bool, "object": dict, "array": list}


def schema_errors(node: dict[str, Any], value: Any, where: str = "") -> list[str]:
    """What of the JSON Schema keywords values.schema.json uses rejects ``value`` (empty: accepted)."""
    errors: list[str] = []
    if "type" in node:
        wanted = _JSON_TYPES[node["type"]]
        if not isinstance(value, wanted) or (isinstance(value, bool) and node["type"] != "boolean"):
            return [f"{where}: {value!r} is not {node['type']}"]
    if "enum" in node and value not in node["enum"]:
        errors.append(f"{where}: {value!r} not in {node['enum']}")
    if "pattern" in node and isinstance(value, str) and not re.search(node["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {node['pattern']}")
    if "minLength" in node and isinstance(value, str) and len(value) < node["minLength"]:
        errors.append(f"{where}: {value!r} is shorter than {node['minLength']}")
    if isinstance(value, int | float) and not node.get("minimum", value) <= value <= node.get("maximum", value):
        errors.append(f"{where}: {value!r} out of range")
    if "oneOf" in node and sum(not schema_errors(choice, value) for choice in node["oneOf"]) != 1:
        errors.append(f"{where}: {value!r} matches not exactly one of oneOf")
    if isinstance(value, dict):
        properties = node.get("properties", {})
        extra = node.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(properties[key], item, f"{where}.{key}")
            elif extra is False:
                errors.append(f"{where}: unknown key {key!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(extra, item, f"{where}.{key}")
    return errors


def test_the_schema_knows_every_default_and_accepts_its_declared_value() -> None:
    assert set(_schema_at("defaults")["properties"]) == set(VALUES["defaults"])
    for setting in HELM:
        node = _schema_at(str(setting.helm))
        if setting.helm == "image.helper":
            assert schema_errors(node, VALUES["image"]["helper"]) == []
            continue
        assert schema_errors(node, setting.default, str(setting.helm)) == []
        if get_origin(setting.kept) is Literal:  # the schema offers the same choices
            assert node["enum"] == list(get_args(setting.kept)), setting.helm


@pytest.mark.parametrize("setting", [s for s in HELM if s.type is float], ids=lambda s: s.field)
def test_the_schema_accepts_durations_the_parser_accepts(setting: Setting) -> None:
    node = _schema_at(str(setting.helm))
    for good in ("90s", "2m", "1h30m", "1.5s", "500ms", "250us", "20", "0.5", "0", "0s"):
        try:
            setting.parse(good)
        except ValueError:  # "0" for a deadline
            continue
        assert schema_errors(node, good) == [], good


def test_the_schema_check_has_teeth() -> None:
    assert schema_errors(_schema_at("defaults.drain"), "ten seconds")
    assert schema_errors(_schema_at("defaults.agentPort"), "15400")
    assert schema_errors(_schema_at("defaults.prewarmPolicy"), "block")
    assert schema_errors(_schema_at("defaults.resources"), {"requests": {"cpu": "lots"}})


# --- helper/env.py and the helper's own defaults ----------------------------------------------------------------

HELPER_NAMES = {
    value for key, value in vars(helper_env).items() if key.isupper() and isinstance(value, str)
    and value.startswith("LANES_")
}
ENV_SETTINGS = [s for s in SETTINGS if s.env]
_PREWARM_BASE = {helper_env.PREWARM_TARGETS: "tcp://db:5432"}


def _env_text(setting: Setting, value: Any) -> str:
    """``value`` the way the webhook injects it (webhook/injection/mutation.py): plain seconds, comma lists."""
    if setting.type is float:
        return format_seconds(value)
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _helper_reads(environ: dict[str, str]) -> tuple[Any, Any]:
    return agent_config(environ=environ), prewarm_config(environ={**_PREWARM_BASE, **environ})


def test_every_declared_env_var_is_a_helper_variable() -> None:
    for setting in ENV_SETTINGS:
        assert setting.env in HELPER_NAMES, setting.field
        assert setting.env in [v for v in vars(names).values() if isinstance(v, str)], f"{setting.env}: not in names"


@pytest.mark.parametrize("setting", ENV_SETTINGS, ids=lambda s: s.field)
def test_the_helper_default_is_the_declared_one(setting: Setting) -> None:
    typed = _typed_default(setting)
    if typed in (None, ()):  # nothing is injected for "none"; the helper's unset is none as well
        return
    unset = _helper_reads({})
    declared = _helper_reads({str(setting.env): _env_text(setting, typed)})
    assert declared == unset, f"{setting.env}: the helper's default is not {setting.default!r}"
    other = typed + 1 if isinstance(typed, int | float) else next(e for e in _examples(setting) if e != typed)
    assert _helper_reads({str(setting.env): _env_text(setting, other)}) != unset, f"the helper ignores {setting.env}"


# --- docs ------------------------------------------------------------------------------------------------------


def test_generated_doc_tables_are_up_to_date() -> None:
    assert docs.stale(REPO) == [], "run: python -m devtools.docs"


def test_a_stale_doc_table_is_caught(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for document in {document for document, _ in docs.REGIONS.values()}:
        text = (REPO / document).read_text(encoding="utf-8")
        if document == "docs/reference.md":  # someone edits a generated row by hand
            text = text.replace("| `10s` (`defaults.drain`) |", "| `20s` (`defaults.drain`) |")
        (tmp_path / document).write_text(text, encoding="utf-8")
    assert docs.stale(tmp_path) == ["docs/reference.md"]
