"""Cluster defaults: validated at load time with the same parsers as annotations; errors name file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webhook.contract.defaults import (
    ClusterDefaults,
    DefaultsError,
    defaults_from_mapping,
    load_defaults,
    override_defaults,
)
from webhook.contract.settings import LanesConfig


def test_no_path_means_built_in_defaults() -> None:
    defaults = load_defaults(None)
    assert defaults == ClusterDefaults()
    assert defaults.lane == "base"
    assert defaults.agent_port == 15400
    assert defaults.tag_header == "x-lane"


def test_yaml_file_with_snake_and_camel_case_keys(tmp_path: Path) -> None:
    path = tmp_path / "defaults.yaml"
    path.write_text("tagHeader: X-Env\ndrain: 20\nprewarm_policy: require\nresources:\n  limits: {memory: 128Mi}\n")
    defaults = load_defaults(path)
    assert defaults.tag_header == "x-env"
    assert defaults.parsed["drain"] == 20.0
    assert defaults.parsed["prewarm_policy"] == "require"
    assert defaults.resources.limits == {"memory": "128Mi"}


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "defaults.json"
    path.write_text(json.dumps({"lane": "gray", "agentPort": 16000}))
    defaults = load_defaults(str(path))
    assert (defaults.lane, defaults.agent_port) == ("gray", 16000)


def test_empty_file_is_built_in_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_defaults(path) == ClusterDefaults()


@pytest.mark.parametrize(
    ("content", "field", "hint"),
    [
        ("drain: 10x\n", "drain", "e.g."),
        ("lane: Gray\n", "lane", "e.g. gray"),
        ("agentPort: 15001\n", "agentPort", "Istio"),
        ("warmupCurve: k=-1\n", "warmupCurve", "e.g."),
        ("prewarm: ftp://x\n", "prewarm", "e.g."),
        ("prewarmPolicy: block\n", "prewarmPolicy", "warn or require"),
        ("prewarmTimeout: 0s\n", "prewarmTimeout", "more than 0"),
        ("imagePullPolicy: Sometimes\n", "imagePullPolicy", "Always"),
        ("resources: {requests: {cpu: lots}}\n", "resources.requests", "quantity"),
        ("tagHeadr: x\n", "tagHeadr", "did you mean tagHeader"),
        ("helperImage: ''\n", "helperImage", "empty"),
    ],
)
def test_load_errors_name_the_file_and_the_field(tmp_path: Path, content: str, field: str, hint: str) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(content)
    with pytest.raises(DefaultsError) as info:
        load_defaults(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: ")
    assert hint in message


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("lane: base\ndrain: [\n")
    with pytest.raises(DefaultsError, match=rf"{path}: line \d+: invalid YAML"):
        load_defaults(path)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(DefaultsError, match="cannot read"):
        load_defaults(tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- a\n")
    with pytest.raises(DefaultsError, match="must be a mapping"):
        load_defaults(path)


def test_defaults_are_immutable_so_the_parsed_cache_cannot_go_stale() -> None:
    defaults = ClusterDefaults()
    with pytest.raises(ValueError):
        defaults.drain = "1s"


def test_override_defaults_accepts_field_spellings_and_nested_keys() -> None:
    base = defaults_from_mapping({"drain": "5s"})
    changed = override_defaults(
        base, [("tag-header", "x-env"), ("warmupCurve", "k=2"), ("resources.requests.cpu", "50m")]
    )
    assert changed.tag_header == "x-env"
    assert changed.warmup_curve == "k=2"
    assert changed.resources.requests["cpu"] == "50m"
    assert changed.drain == "5s"  # untouched values survive
    assert override_defaults(base, []) is base


def test_override_defaults_errors_name_the_source() -> None:
    with pytest.raises(DefaultsError, match=r"^--set: drain: "):
        override_defaults(ClusterDefaults(), [("drain", "forever")])


def test_config_hash_is_stable_and_changes_with_any_value() -> None:
    values = dict(ClusterDefaults().parsed, app="web", app_port=8080)
    first, second = LanesConfig(**values), LanesConfig(**values)
    assert first.hash == second.hash
    assert len(first.hash) == 16
    assert LanesConfig(**{**values, "lane": "gray"}).hash != first.hash
    assert LanesConfig(**{**values, "helper_image": "other:1"}).hash != first.hash


def test_configs_are_shared_between_pods_with_the_same_values() -> None:
    defaults = ClusterDefaults()
    values = dict(defaults.parsed, app="web", app_port=8080)
    assert defaults.config(dict(values)) is defaults.config(dict(values))
    assert defaults.config({**values, "lane": "gray"}) is not defaults.config(values)
