"""admit_pod and validate_workload: the transport-independent answers."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from tests.webhook_unit.factories import FakeOwners, container, frozen, pod
from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults
from webhook.contract.messages import MAX_WARNING
from webhook.injection.admit import PodAdmission, admit_pod, validate_workload
from webhook.injection.mutation import mutate
from webhook.injection.resolve import resolve_pod

DEFAULTS = ClusterDefaults()


def test_injects_and_the_patch_equals_the_mutation() -> None:
    subject = pod(
        container(env=[{"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "a=b"}]),
        annotations={"lanes.io/prewarm": "tcp://db:5432", "lanes.io/drain": "40s"},
        initContainers=[container("init", port=None)],
    )
    before = frozen(subject)
    result = admit_pod(subject, "shop", DEFAULTS, None)
    assert subject == before
    assert result.injected and result.skip_reason is None
    expected = mutate(subject, resolve_pod(subject, "shop", DEFAULTS, None).config).pod
    assert jsonpatch.apply_patch(copy.deepcopy(subject), result.patch) == expected
    allowed = (
        "/metadata/labels",
        "/metadata/annotations",
        "/spec/initContainers",
        "/spec/containers/0/env",
        "/spec/containers/0/lifecycle",
        "/spec/containers/0/readinessProbe",
        "/spec/readinessGates",
        "/spec/terminationGracePeriodSeconds",
    )
    assert all(op["path"].startswith(allowed) for op in result.patch), [op["path"] for op in result.patch]


def test_patch_values_are_plain_json() -> None:
    import json

    result = admit_pod(pod(annotations={"lanes.io/prewarm": "tcp://db:1"}), "shop", DEFAULTS, None)
    assert json.loads(json.dumps(result.patch)) == result.patch


def test_warnings_are_prefixed_and_fit() -> None:
    result = admit_pod(pod(annotations={"lanes.io/drain": "forever", "lanes.io/warmpu": "1m"}), "shop", DEFAULTS, None)
    assert len(result.warnings) == 2
    assert all(w.startswith("lanes: ") and len(w) <= MAX_WARNING for w in result.warnings)


@pytest.mark.parametrize(
    ("subject", "namespace", "reason"),
    [
        (pod(), "lanes-system", "own-namespace"),
        (pod(hostNetwork=True), "shop", "hostNetwork"),
        (pod(labels={"lanes.io/inject": "false"}), "shop", "opted-out"),
        ({"metadata": {"name": "x"}}, "shop", "invalid-pod"),
    ],
)
def test_skips(subject: dict[str, Any], namespace: str, reason: str) -> None:
    owners = FakeOwners()
    assert admit_pod(subject, namespace, DEFAULTS, owners) == PodAdmission(skip_reason=reason)
    assert owners.calls == []  # skipped before any lookup


def test_reinvocation_of_an_injected_pod_is_a_no_op() -> None:
    subject = pod()
    first = admit_pod(subject, "shop", DEFAULTS, None)
    injected = jsonpatch.apply_patch(copy.deepcopy(subject), first.patch)
    second = admit_pod(injected, "shop", DEFAULTS, None)
    assert second.patch == [] and not second.injected
    assert second.skip_reason == "already-injected"


def test_config_change_between_invocations_patches_again() -> None:
    subject = pod()
    injected = jsonpatch.apply_patch(copy.deepcopy(subject), admit_pod(subject, "shop", DEFAULTS, None).patch)
    owners = FakeOwners({"shop": {"annotations": {"lanes.io/lane": "gray"}}})
    again = admit_pod(injected, "shop", DEFAULTS, owners)
    assert again.injected
    patched = jsonpatch.apply_patch(copy.deepcopy(injected), again.patch)
    assert patched["metadata"]["labels"]["lanes.io/lane"] == "gray"


def test_own_namespace_follows_the_defaults() -> None:
    custom = ClusterDefaults(own_namespace="platform")
    assert admit_pod(pod(), "platform", custom, None).skip_reason == "own-namespace"
    assert admit_pod(pod(), "lanes-system", custom, None).injected


# --- validate_workload -----------------------------------------------------------------------------------------


def deployment(annotations: dict[str, Any] | None = None, template_annotations: dict[str, Any] | None = None,
               kind: str = "Deployment") -> dict[str, Any]:
    template: dict[str, Any] = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container()]}}
    if template_annotations is not None:
        template["metadata"]["annotations"] = template_annotations
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "web", "annotations": annotations or {}},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template},
    }


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_valid_workloads_have_no_errors(kind: str) -> None:
    good = {"lanes.io/lane": "gray", "lanes.io/drain": "20s", "lanes.io/port": "http", "lanes.io/status": "{}"}
    assert validate_workload(deployment(good, good, kind), DEFAULTS) == []


@pytest.mark.parametrize(
    ("key", "value", "example"),
    [
        ("lanes.io/lane", "Gray", "gray"),
        ("lanes.io/drain", "20x", "90s"),
        ("lanes.io/warmup-curve", "k=0", "linear"),
        ("lanes.io/prewarm", "db:5432", "tcp://"),
        ("lanes.io/prewarm-policy", "always", "require"),
        ("lanes.io/agent", "off", "false"),
        ("lanes.io/port", "grpc", "8080"),
        ("lanes.io/offline-notify", "registry", "http://"),
        ("lanes.io/warmup-requests", "GET", "/api/items"),
    ],
)
@pytest.mark.parametrize("where", ["metadata", "spec.template.metadata"])
def test_errors_name_the_annotation_the_value_and_an_example(key: str, value: str, example: str, where: str) -> None:
    obj = deployment({key: value}) if where == "metadata" else deployment(template_annotations={key: value})
    [error] = validate_workload(obj, DEFAULTS)
    assert error.startswith(f"{where}.annotations[{key}]: ")
    assert f"'{value}'" in error
    assert "e.g." in error and example in error


def test_unknown_keys_are_errors_with_a_suggestion() -> None:
    [error] = validate_workload(deployment({"lanes.io/drian": "5s"}), DEFAULTS)
    assert "lanes.io/drian" in error and "did you mean lanes.io/drain?" in error


def test_cronjob_job_template_is_validated() -> None:
    cron = {
        "kind": "CronJob",
        "metadata": {"name": "n", "annotations": {"lanes.io/lane": "ok"}},
        "spec": {"jobTemplate": {"metadata": {"annotations": {"lanes.io/drain": "x"}},
                                  "spec": {"template": {"metadata": {"annotations": {"lanes.io/lane": "BAD"}},
                                                        "spec": {"containers": [container()]}}}}},
    }
    errors = validate_workload(cron, DEFAULTS)
    assert len(errors) == 2
    assert any(e.startswith("spec.jobTemplate.metadata.annotations[lanes.io/drain]") for e in errors)
    assert any(e.startswith("spec.jobTemplate.spec.template.metadata.annotations[lanes.io/lane]") for e in errors)


@pytest.mark.parametrize("obj", [{"kind": "Service", "metadata": {"annotations": {"lanes.io/lane": "BAD"}}},
                                 {"kind": "Deployment"}, {"kind": "Deployment", "spec": "x", "metadata": None}, {}])
def test_other_kinds_and_odd_shapes_have_nothing_to_check(obj: dict[str, Any]) -> None:
    assert validate_workload(obj, DEFAULTS) == []


def test_non_string_values_are_errors() -> None:
    [error] = validate_workload(deployment({names.ANN_DRAIN: 20}), DEFAULTS)
    assert "must be strings" in error
