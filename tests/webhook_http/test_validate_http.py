"""POST /validate over real TLS: workloads with invalid lanes.io annotations are rejected at apply time."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.webhook_http.bodies import review, workload, workload_review
from tests.webhook_http.support import ThreadServer
from webhook.admission.app import INTERNAL_ERROR_WARNING
from webhook.injection import admit as core


def post(server: ThreadServer, body: Any) -> httpx.Response:
    return server.client.post("/validate", content=orjson.dumps(body))


def answer(response: httpx.Response, uid: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert (envelope["apiVersion"], envelope["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    result: dict[str, Any] = envelope["response"]
    assert result["uid"] == uid
    assert "patch" not in result  # a validating answer never patches
    return result


# --- needs the core: webhook.injection.admit.validate_workload --------------------------------------------------------


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_valid_workload_is_accepted(webhook: ThreadServer, kind: str) -> None:
    obj = workload(kind, {"lanes.io/lane": "gray", "lanes.io/warmup": "90s", "lanes.io/drain": "20s"})
    result = answer(post(webhook, workload_review(obj, kind, uid="u-ok")), "u-ok")
    assert result["allowed"] is True


def test_invalid_annotations_are_rejected_with_every_error(webhook: ThreadServer) -> None:
    obj = workload("Deployment", {"lanes.io/warmup": "soon", "lanes.io/lane": "Not A Label"})
    result = answer(post(webhook, workload_review(obj, uid="u-bad")), "u-bad")
    assert result["allowed"] is False
    assert result["status"]["code"] == 400
    message = result["status"]["message"]
    assert "lanes.io/warmup" in message and "soon" in message
    assert "lanes.io/lane" in message and "Not A Label" in message


def test_invalid_annotation_on_the_workload_itself_is_rejected(webhook: ThreadServer) -> None:
    obj = workload("StatefulSet")
    obj["metadata"]["annotations"] = {"lanes.io/drain": "-5s"}
    result = answer(post(webhook, workload_review(obj, "StatefulSet", uid="u-own")), "u-own")
    assert result["allowed"] is False
    assert "lanes.io/drain" in result["status"]["message"]


def test_update_is_validated_too(webhook: ThreadServer) -> None:
    old = workload("Deployment", {"lanes.io/warmup": "90s"})
    new = workload("Deployment", {"lanes.io/warmup": "forever"})
    result = answer(post(webhook, workload_review(new, operation="UPDATE", old=old, uid="u-upd")), "u-upd")
    assert result["allowed"] is False


def test_dry_run_gets_the_same_verdict(webhook: ThreadServer) -> None:
    obj = workload("Deployment", {"lanes.io/warmup": "soon"})
    wet = answer(post(webhook, workload_review(obj, uid="u-d")), "u-d")
    dry = answer(post(webhook, workload_review(obj, uid="u-d", dry_run=True)), "u-d")
    assert dry == wet


# --- transport behaviour (fault-injected core where a verdict is needed) ------------------------------------


def test_errors_already_on_the_stored_object_do_not_block_an_update(
    webhook: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object that predates the webhook keeps its bad annotation through unrelated updates (finalizer
    removal during deletion, a replica change): the errors come back as warnings instead."""

    def verdict(obj: dict[str, Any], defaults: Any) -> list[str]:
        value = obj["spec"]["template"]["metadata"]["annotations"].get("lanes.io/warmup")
        return [] if value in (None, "90s") else [f"lanes.io/warmup: {value!r} is not a duration; e.g. 90s"]

    monkeypatch.setattr(core, "validate_workload", verdict)
    old = workload("Deployment", {"lanes.io/warmup": "soon"})
    new = workload("Deployment", {"lanes.io/warmup": "soon"})
    new["spec"]["replicas"] = 5
    kept = answer(post(webhook, workload_review(new, operation="UPDATE", old=old, uid="u-r1")), "u-r1")
    assert kept["allowed"] is True
    assert kept["warnings"] == ["lanes: lanes.io/warmup: 'soon' is not a duration; e.g. 90s"]

    worse = workload("Deployment", {"lanes.io/warmup": "later"})
    new_error = answer(post(webhook, workload_review(worse, operation="UPDATE", old=old, uid="u-r2")), "u-r2")
    assert new_error["allowed"] is False
    assert new_error["status"]["message"] == (
        "invalid lanes.io annotations: lanes.io/warmup: 'later' is not a duration; e.g. 90s"
    )


def test_every_error_is_listed_in_the_message(webhook: ThreadServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "validate_workload", lambda obj, d: ["first problem", "second problem"])
    result = answer(post(webhook, workload_review(workload(), uid="u-two")), "u-two")
    assert result["allowed"] is False
    assert result["status"] == {
        "status": "Failure",
        "code": 400,
        "reason": "BadRequest",
        "message": "invalid lanes.io annotations: first problem; second problem",
    }


def test_core_failure_allows_with_a_warning(webhook: ThreadServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(obj: Any, defaults: Any) -> list[str]:
        raise RecursionError("too deep")

    monkeypatch.setattr(core, "validate_workload", broken)
    result = answer(post(webhook, workload_review(workload(), uid="u-bug")), "u-bug")
    assert result == {"uid": "u-bug", "allowed": True, "warnings": [INTERNAL_ERROR_WARNING]}


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_other_operations_are_allowed_with_a_warning(webhook: ThreadServer, operation: str) -> None:
    result = answer(post(webhook, workload_review(None, operation=operation, old=workload(), uid="u-op")), "u-op")
    assert result["allowed"] is True
    assert any(f"got {operation!r}" in w for w in result["warnings"])


def test_pods_and_other_kinds_are_allowed_with_a_warning(webhook: ThreadServer) -> None:
    result = answer(post(webhook, review({"metadata": {}}, uid="u-pod")), "u-pod")
    assert result["allowed"] is True
    assert "handles apps Deployment/StatefulSet/DaemonSet, got v1, Kind=Pod" in result["warnings"][0]
    job = review({}, uid="u-job", kind={"group": "batch", "version": "v1", "kind": "Job"})
    assert answer(post(webhook, job), "u-job")["allowed"] is True


def test_scale_subresource_is_allowed(webhook: ThreadServer) -> None:
    body = workload_review({"spec": {"replicas": 3}}, operation="UPDATE", sub_resource="scale", uid="u-scale")
    result = answer(post(webhook, body), "u-scale")
    assert result["allowed"] is True and "subresource 'scale'" in result["warnings"][0]


@pytest.mark.parametrize("obj", [[1], "deployment", None])
def test_object_that_is_not_an_object_is_allowed_with_a_warning(webhook: ThreadServer, obj: Any) -> None:
    result = answer(post(webhook, workload_review(obj, uid="u-obj")), "u-obj")
    assert result["allowed"] is True and "not a Deployment object" in result["warnings"][0]
