"""Configuration resolution: precedence, the owner chain through the watch cache, defaults, warnings."""

from __future__ import annotations

from typing import Any

import pytest

from tests.webhook_unit.factories import FakeOwners, container, pod
from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults, defaults_from_mapping
from webhook.contract.messages import MAX_MESSAGE
from webhook.injection.resolve import SETTINGS, Layer, namespace_layers, resolve, resolve_pod

DEFAULTS = ClusterDefaults()


def deployment_cache(
    *,
    deployment: dict[str, str] | None = None,
    replicaset: dict[str, str] | None = None,
    namespace: dict[str, Any] | None = None,
    rs_cached: bool = True,
    deployment_cached: bool = True,
) -> FakeOwners:
    workloads: dict[tuple[str, str, str], dict[str, Any]] = {}
    if rs_cached:
        workloads[("shop", "ReplicaSet", "web-5d8f")] = {
            "annotations": replicaset or {},
            "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}],
        }
    if deployment_cached:
        workloads[("shop", "Deployment", "web")] = {"annotations": deployment or {}}
    return FakeOwners({"shop": namespace or {"labels": {}, "annotations": {}}}, workloads)


def rs_pod(annotations: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    return pod(
        name=None,
        annotations=annotations,
        owner=("ReplicaSet", "web-5d8f"),
        labels={"pod-template-hash": "5d8f", **kwargs.pop("labels", {})},
        **kwargs,
    )


# --- precedence -----------------------------------------------------------------------------------------------


def test_pod_beats_workload_beats_namespace_beats_defaults() -> None:
    cache = deployment_cache(
        deployment={"lanes.io/lane": "from-deploy", "lanes.io/drain": "20s", "lanes.io/warmup": "1m"},
        namespace={
            "annotations": {"lanes.io/lane": "from-ns", "lanes.io/drain": "30s", "lanes.io/register-delay": "7s"}
        },
    )
    result = resolve_pod(rs_pod({"lanes.io/lane": "from-pod"}), "shop", DEFAULTS, cache)
    config = result.config
    assert config.lane == "from-pod"
    assert config.drain == 20.0  # workload beats namespace
    assert config.warmup == 60.0
    assert config.register_delay == 7.0  # namespace beats defaults
    assert config.prewarm_policy == DEFAULTS.prewarm_policy  # nothing set anywhere
    assert result.sources == {
        "lane": "pod",
        "drain": "Deployment web",
        "warmup": "Deployment web",
        "register_delay": "namespace shop",
    }
    assert result.warnings == []


def test_namespace_annotation_beats_namespace_label_which_beats_defaults() -> None:
    labelled = FakeOwners({"shop": {"labels": {"lanes.io/lane": "blue"}, "annotations": {}}})
    assert resolve_pod(pod(), "shop", DEFAULTS, labelled).config.lane == "blue"
    both = FakeOwners({"shop": {"labels": {"lanes.io/lane": "blue"}, "annotations": {"lanes.io/lane": "red"}}})
    assert resolve_pod(pod(), "shop", DEFAULTS, both).config.lane == "red"
    assert resolve_pod(pod(), "shop", defaults_from_mapping({"lane": "green"}), None).config.lane == "green"


def test_replicaset_annotations_beat_the_deployments() -> None:
    cache = deployment_cache(replicaset={"lanes.io/drain": "3s"}, deployment={"lanes.io/drain": "4s"})
    assert resolve_pod(rs_pod(), "shop", DEFAULTS, cache).config.drain == 3.0


def test_invalid_pod_value_falls_back_to_the_next_layer_and_says_so() -> None:
    cache = deployment_cache(deployment={"lanes.io/drain": "25s"})
    result = resolve_pod(rs_pod({"lanes.io/drain": "soon"}), "shop", DEFAULTS, cache)
    assert result.config.drain == 25.0
    [warning] = result.warnings
    assert "lanes.io/drain" in warning and "'soon'" in warning and "e.g." in warning and "'25s'" in warning


def test_invalid_values_on_every_layer_fall_back_to_the_default_with_one_warning_each() -> None:
    cache = deployment_cache(
        deployment={"lanes.io/drain": "x"}, namespace={"annotations": {"lanes.io/drain": "y"}}
    )
    result = resolve_pod(rs_pod({"lanes.io/drain": "z"}), "shop", DEFAULTS, cache)
    assert result.config.drain == 10.0
    assert len(result.warnings) == 3
    assert all(f"using '{DEFAULTS.drain}'" in w for w in result.warnings)
    assert any("(Deployment web)" in w for w in result.warnings)
    assert any("(namespace shop)" in w for w in result.warnings)


def test_lower_layers_are_not_consulted_once_a_value_applies() -> None:
    cache = deployment_cache(namespace={"annotations": {"lanes.io/drain": "broken"}})
    result = resolve_pod(rs_pod({"lanes.io/drain": "5s"}), "shop", DEFAULTS, cache)
    assert result.config.drain == 5.0
    assert result.warnings == []


# --- owner chain ------------------------------------------------------------------------------------------------


def test_replicaset_not_cached_finds_the_deployment_by_the_pod_template_hash() -> None:
    cache = deployment_cache(rs_cached=False, deployment={"lanes.io/lane": "gray"})
    result = resolve_pod(rs_pod(), "shop", DEFAULTS, cache)
    assert result.config.lane == "gray"
    assert result.config.app == "web"
    assert result.warnings == []


def test_deployment_not_cached_falls_back_with_a_warning() -> None:
    cache = deployment_cache(deployment_cached=False, namespace={"annotations": {"lanes.io/lane": "ns-lane"}})
    result = resolve_pod(rs_pod(), "shop", DEFAULTS, cache)
    assert result.config.lane == "ns-lane"
    assert result.config.app == "web"  # the name is known from the ReplicaSet's ownerReferences
    assert any("Deployment web not in the watch cache" in w for w in result.warnings)


def test_replicaset_without_hash_label_not_cached_warns_and_uses_its_name() -> None:
    cache = FakeOwners({"shop": {}})
    subject = pod(name=None, owner=("ReplicaSet", "standalone-rs"))
    result = resolve_pod(subject, "shop", DEFAULTS, cache)
    assert result.config.app == "standalone-rs"
    assert any("ReplicaSet standalone-rs not in the watch cache" in w for w in result.warnings)


def test_job_then_cronjob() -> None:
    cache = FakeOwners(
        {"shop": {}},
        {
            ("shop", "Job", "nightly-28000"): {
                "annotations": {"lanes.io/drain": "1s"},
                "ownerReferences": [{"kind": "CronJob", "name": "nightly", "controller": True}],
            },
            ("shop", "CronJob", "nightly"): {"annotations": {"lanes.io/drain": "2s", "lanes.io/lane": "batch"}},
        },
    )
    result = resolve_pod(pod(name=None, owner=("Job", "nightly-28000")), "shop", DEFAULTS, cache)
    assert result.config.drain == 1.0  # the Job (from the jobTemplate) is nearer than the CronJob
    assert result.config.lane == "batch"
    assert result.config.app == "nightly"


def test_job_not_cached_warns_and_uses_the_job_name() -> None:
    result = resolve_pod(pod(name=None, owner=("Job", "once")), "shop", DEFAULTS, FakeOwners({"shop": {}}))
    assert result.config.app == "once"
    assert any("Job once not in the watch cache" in w for w in result.warnings)


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_statefulset_and_daemonset(kind: str) -> None:
    cache = FakeOwners({"shop": {}}, {("shop", kind, "db"): {"annotations": {"lanes.io/lane": "gray"}}})
    result = resolve_pod(pod(name="db-0", owner=(kind, "db")), "shop", DEFAULTS, cache)
    assert (result.config.lane, result.config.app) == ("gray", "db")
    missing = resolve_pod(pod(name="db-0", owner=(kind, "db")), "shop", DEFAULTS, FakeOwners({"shop": {}}))
    assert any(f"{kind} db not in the watch cache" in w for w in missing.warnings)


def test_unknown_owner_kind_only_names_the_app() -> None:
    cache = FakeOwners({"shop": {}})
    result = resolve_pod(pod(name="x-1", owner=("Rollout", "checkout")), "shop", DEFAULTS, cache)
    assert result.config.app == "checkout"
    assert result.warnings == []


def test_no_cache_means_no_lookups_and_no_warnings() -> None:
    result = resolve_pod(rs_pod(), "shop", DEFAULTS, None)
    assert result.config.lane == "base"
    assert result.config.app == "web"
    assert result.warnings == []


def test_namespace_not_cached_warns() -> None:
    result = resolve_pod(pod(), "shop", DEFAULTS, FakeOwners())
    assert any("namespace shop not in the watch cache" in w for w in result.warnings)


# --- computed defaults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "owner", "metadata_name", "expected"),
    [
        ({"app.kubernetes.io/name": "k8s-name", "app": "legacy"}, ("StatefulSet", "owner"), "p", "k8s-name"),
        ({"app": "legacy"}, ("StatefulSet", "owner"), "p", "legacy"),
        ({}, ("StatefulSet", "owner"), "p", "owner"),
        ({}, None, "lonely-pod", "lonely-pod"),
    ],
)
def test_app_default_chain(
    labels: dict[str, str], owner: tuple[str, str] | None, metadata_name: str, expected: str
) -> None:
    subject = pod(name=metadata_name, labels=labels, owner=owner)
    assert resolve_pod(subject, "shop", DEFAULTS, None).config.app == expected


def test_app_default_from_generate_name() -> None:
    subject = pod(name=None)
    subject["metadata"]["generateName"] = "batch-"
    assert resolve_pod(subject, "shop", DEFAULTS, None).config.app == "batch"


def test_app_annotation_beats_labels() -> None:
    subject = pod(labels={"app": "legacy"}, annotations={"lanes.io/app": "checkout"})
    assert resolve_pod(subject, "shop", DEFAULTS, None).config.app == "checkout"


def test_app_port_default_and_named_port() -> None:
    two = pod(container("a", port=9000), container("b", port=9100))
    assert resolve_pod(two, "shop", DEFAULTS, None).config.app_port == 9000
    named = pod(
        container("a", port=9000),
        {"name": "b", "image": "b", "ports": [{"name": "admin", "containerPort": 9100}]},
        annotations={"lanes.io/port": "admin"},
    )
    assert resolve_pod(named, "shop", DEFAULTS, None).config.app_port == 9100
    no_ports = pod(container("a", port=None))
    assert resolve_pod(no_ports, "shop", DEFAULTS, None).config.app_port is None
    probe_only = pod(container("a", port=None, readinessProbe={"httpGet": {"path": "/r", "port": 7000}}))
    assert resolve_pod(probe_only, "shop", DEFAULTS, None).config.app_port == 7000


def test_unknown_port_name_warns_and_uses_the_first_container_port() -> None:
    result = resolve_pod(pod(annotations={"lanes.io/port": "grpc"}), "shop", DEFAULTS, None)
    assert result.config.app_port == 8080
    [warning] = result.warnings
    assert "lanes.io/port" in warning and "'grpc'" in warning and "'8080'" in warning


# --- warnings ---------------------------------------------------------------------------------------------------

BAD_VALUES = {
    names.ANN_LANE: "Gray Lane",
    names.ANN_APP: "not/a label",
    names.ANN_AGENT: "maybe",
    names.ANN_PORT: "99999",
    names.ANN_WARMUP: "2 minutes",
    names.ANN_WARMUP_CURVE: "quadratic",
    names.ANN_WARMUP_REQUESTS: "GET items",
    names.ANN_REGISTER_DELAY: "-1s",
    names.ANN_PREWARM: "postgres:5432",
    names.ANN_PREWARM_POLICY: "block",
    names.ANN_DRAIN: "48h",
    names.ANN_OFFLINE_NOTIFY: "ftp://registry/offline",
    names.ANN_REGISTRY: "nacos://n?mode=x",
    names.ANN_REGISTRY_SECRET: "Not_A_Secret",
}


def test_every_setting_has_a_bad_value_case() -> None:
    assert set(BAD_VALUES) == {s.annotation for s in SETTINGS} == set(names.SETTING_ANNOTATIONS)


@pytest.mark.parametrize(("key", "value"), sorted(BAD_VALUES.items()))
def test_every_invalid_annotation_warns_with_key_value_example_and_fallback(key: str, value: str) -> None:
    baseline = resolve_pod(pod(), "shop", DEFAULTS, None).config
    result = resolve_pod(pod(annotations={key: value}), "shop", DEFAULTS, None)
    assert result.config == baseline  # the default is used, nothing else changes
    [warning] = result.warnings
    assert warning.startswith(f"{key}: ")
    assert f"'{value}'" in warning
    assert "e.g." in warning
    assert "; using " in warning
    assert len(warning) <= MAX_MESSAGE


def test_very_long_values_keep_warnings_within_budget() -> None:
    value = "tcp://" + "x" * 500
    result = resolve_pod(pod(annotations={names.ANN_PREWARM: value}), "shop", DEFAULTS, None)
    assert all(len(w) <= MAX_MESSAGE for w in result.warnings)
    assert "lanes.io/prewarm" in result.warnings[0]


def test_control_characters_are_escaped_in_warnings() -> None:
    result = resolve_pod(pod(annotations={names.ANN_DRAIN: "1\n0s"}), "shop", DEFAULTS, None)
    assert all(w.isprintable() for w in result.warnings)


def test_non_string_annotation_values_ask_for_quotes() -> None:
    result = resolve(pod(annotations={names.ANN_AGENT: False}), DEFAULTS)
    assert result.config.agent is True
    assert 'quote it in YAML, e.g. "false"' in result.warnings[0]


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("lanes.io/warmpu", "did you mean lanes.io/warmup?"),
        ("lanes.io/drian", "did you mean lanes.io/drain?"),
        ("lanes.io/register_delay", "did you mean lanes.io/register-delay?"),
        ("lanes.io/zzzzzz", "docs/reference.md"),
        ("lanes.io/inject", "is a pod label"),
    ],
)
def test_unknown_keys_get_a_did_you_mean(key: str, hint: str) -> None:
    result = resolve(pod(annotations={key: "1"}), DEFAULTS)
    [warning] = result.warnings
    assert hint in warning
    assert len(warning) <= MAX_MESSAGE


def test_unknown_keys_on_workload_and_namespace_layers_name_the_layer() -> None:
    result = resolve(
        pod(),
        DEFAULTS,
        workloads=[Layer("Deployment web", {"lanes.io/lanes": "gray"})],
        namespace=namespace_layers({"lanes.io/drainn": "1s"}, {}, "shop"),
    )
    assert any("(Deployment web)" in w and "lanes.io/lane" in w for w in result.warnings)
    assert any("(namespace shop)" in w and "lanes.io/drain" in w for w in result.warnings)


def test_other_prefixes_and_the_status_annotation_are_not_warned_about() -> None:
    subject = pod(annotations={"lanes.io/status": "{}", "example.com/lanes.io": "x", "lanesXio/a": "b"})
    result = resolve(subject, DEFAULTS)
    assert result.warnings == []


# --- agent degradation -----------------------------------------------------------------------------------------


def test_agent_port_taken_by_the_app_degrades_to_minimal_mode() -> None:
    result = resolve(pod(container("app", port=15400)), DEFAULTS)
    assert result.config.agent is False
    assert any("15400" in w and "lanes-agent" in w for w in result.warnings)


def test_minimal_mode_says_which_settings_have_no_effect() -> None:
    result = resolve(
        pod(annotations={"lanes.io/agent": "false", "lanes.io/warmup-requests": "/x", "lanes.io/offline-notify": "http://r/x"}),
        DEFAULTS,
    )
    assert result.config.agent is False
    assert any("warmup-requests" in w for w in result.warnings)
    assert any("offline-notify" in w for w in result.warnings)


def test_valid_values_are_typed() -> None:
    result = resolve(
        pod(
            annotations={
                "lanes.io/lane": "gray",
                "lanes.io/warmup": "1m30s",
                "lanes.io/warmup-curve": "aggression=1.5,min=5%",
                "lanes.io/warmup-requests": "GET /api/items x50 c4, /healthz",
                "lanes.io/prewarm": "tcp://db:5432, https://auth/healthz#200",
                "lanes.io/prewarm-policy": "require",
                "lanes.io/offline-notify": "http://registry:8080/offline,http://b/x",
                "lanes.io/agent": "true",
            }
        ),
        DEFAULTS,
    )
    config = result.config
    assert result.warnings == []
    assert config.warmup == 90.0
    assert config.warmup_curve == "aggression=1.5,min=5%"
    assert config.warmup_requests == "GET /api/items x50 c4, /healthz"
    assert config.prewarm == ("tcp://db:5432", "https://auth/healthz#200")
    assert config.prewarm_policy == "require"
    assert config.offline_notify == ("http://registry:8080/offline", "http://b/x")
