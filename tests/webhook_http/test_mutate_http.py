"""POST /mutate over real TLS: AdmissionReview v1 for Pods in, JSON Patch out."""

from __future__ import annotations

import asyncio
import base64
import copy
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import orjson
import pytest

from tests.webhook_http.bodies import pod, review
from tests.webhook_http.support import Pki, SecretVolume, ThreadServer, start_thread_server
from webhook.admission.app import INTERNAL_ERROR_WARNING
from webhook.injection import admit as core


def post(server: ThreadServer, body: Any, path: str = "/mutate") -> httpx.Response:
    return server.client.post(path, content=orjson.dumps(body), headers={"content-type": "application/json"})


def answer(response: httpx.Response, uid: str) -> dict[str, Any]:
    """The ``response`` of a 200 AdmissionReview, after checking the envelope echoes the request."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    envelope = response.json()
    assert envelope["apiVersion"] == "admission.k8s.io/v1"
    assert envelope["kind"] == "AdmissionReview"
    result: dict[str, Any] = envelope["response"]
    assert result["uid"] == uid
    return result


def patched(original: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    assert result["allowed"] is True
    assert result["patchType"] == "JSONPatch"
    ops = orjson.loads(base64.b64decode(result["patch"]))
    assert isinstance(ops, list) and ops
    result_pod: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(original), ops)
    return result_pod


def unchanged_with_warning(result: dict[str, Any], fragment: str) -> None:
    assert result["allowed"] is True
    assert "patch" not in result and "patchType" not in result
    assert any(fragment in w for w in result["warnings"]), result["warnings"]


# --- the happy path (needs the core: webhook.injection.admit.admit_pod) ----------------------------------------------


def test_pod_gets_a_json_patch_that_applies(webhook: ThreadServer) -> None:
    original = pod()
    body = review(original, uid="6c0d0f4e-5a2b-4f7e-9a53-1d2b3c4d5e6f")
    result = answer(post(webhook, body), "6c0d0f4e-5a2b-4f7e-9a53-1d2b3c4d5e6f")
    mutated = patched(original, result)
    assert mutated["metadata"]["labels"]["lanes.io/lane"] == "base"
    assert mutated["metadata"]["labels"]["lanes.io/app"] == "web"
    assert "lanes.io/status" in mutated["metadata"]["annotations"]
    assert {"conditionType": "lanes.io/registered"} in mutated["spec"]["readinessGates"]
    agent = [c for c in mutated["spec"]["initContainers"] if c["name"] == "lanes-agent"]
    assert agent and agent[0]["restartPolicy"] == "Always"
    env = {e["name"] for e in mutated["spec"]["containers"][0]["env"]}
    assert {"LANES_LANE", "LANES_APP", "LANES_POD_NAME"} <= env


def test_dry_run_gets_the_identical_answer(webhook: ThreadServer) -> None:
    original = pod()
    wet = answer(post(webhook, review(original, uid="same")), "same")
    dry = answer(post(webhook, review(original, uid="same", dry_run=True)), "same")
    assert dry == wet
    assert "patch" in dry  # a dry run still shows what would be injected


def test_namespace_falls_back_to_object_metadata(webhook: ThreadServer) -> None:
    original = pod(namespace="shop")
    result = answer(post(webhook, review(original, uid="u-ns", namespace=None)), "u-ns")
    mutated = patched(original, result)
    assert mutated["metadata"]["labels"]["lanes.io/lane"] == "base"


def test_unicode_in_names_and_annotations_round_trips(webhook: ThreadServer) -> None:
    original = pod(
        name="",
        generateName="wéb-ünï-",
        annotations={"description": "数据库 ✓ — \u202e reversed", "lanes.io/lane": "grün"},
    )
    original["metadata"].pop("name")
    result = answer(post(webhook, review(original, uid="u-uni")), "u-uni")
    assert result["allowed"] is True
    # "grün" is not a DNS label: the core warns and uses the default; every warning is printable and short
    for warning in result.get("warnings", []):
        assert warning.isprintable() and len(warning) <= 120
    mutated = patched(original, result)
    assert mutated["metadata"]["annotations"]["description"] == "数据库 ✓ — \u202e reversed"
    assert mutated["metadata"]["labels"]["lanes.io/lane"] == "base"


class StaticOwners:
    """A fixed OwnerLookup table: the shape WatchCache serves, without a cluster."""

    def __init__(self) -> None:
        self.namespaces: dict[str, dict[str, Any]] = {"shop": {"labels": {"lanes": "enabled"}, "annotations": {}}}
        self.workloads: dict[tuple[str, str, str], dict[str, Any]] = {
            ("shop", "ReplicaSet", "web-7d9c"): {
                "name": "web-7d9c",
                "annotations": {},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}],
            },
            ("shop", "Deployment", "web"): {
                "name": "web",
                "annotations": {"lanes.io/lane": "gray"},
                "ownerReferences": [],
            },
        }

    def namespace_metadata(self, name: str) -> dict[str, Any] | None:
        return self.namespaces.get(name)

    def workload_metadata(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        return self.workloads.get((namespace, kind, name))


def test_owner_lookup_reaches_the_core(tmp_path: Path, pki: Pki, secret_volume: SecretVolume) -> None:
    server = start_thread_server(pki, secret_volume.cert, secret_volume.key, owners=StaticOwners())
    try:
        original = pod(
            ownerReferences=[
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c", "uid": "1", "controller": True}
            ]
        )
        mutated = patched(original, answer(post(server, review(original, uid="u-own")), "u-own"))
        assert mutated["metadata"]["labels"]["lanes.io/lane"] == "gray"
    finally:
        server.stop()


# --- transport behaviour that does not depend on the mutation ------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "resource", "fragment"),
    [
        (
            {"group": "", "version": "v1", "kind": "ConfigMap"},
            {"group": "", "version": "v1", "resource": "configmaps"},
            "/mutate handles Pods, got v1, Kind=ConfigMap",
        ),
        (
            {"group": "apps", "version": "v1", "kind": "Deployment"},
            {"group": "apps", "version": "v1", "resource": "deployments"},
            "got apps/v1, Kind=Deployment",
        ),
        (
            {"group": "", "version": "v1", "kind": "Pod"},
            {"group": "", "version": "v1", "resource": "services"},
            "got resource 'services'",
        ),
    ],
)
def test_other_kinds_are_allowed_unchanged_with_a_warning(
    webhook: ThreadServer, kind: dict[str, str], resource: dict[str, str], fragment: str
) -> None:
    body = review({"metadata": {"name": "x"}}, uid="u-kind", kind=kind, resource=resource)
    unchanged_with_warning(answer(post(webhook, body), "u-kind"), fragment)


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT", "UPDATE", "PATCH-ish"])
def test_other_operations_are_allowed_unchanged_with_a_warning(webhook: ThreadServer, operation: str) -> None:
    obj = None if operation == "DELETE" else pod()
    body = review(obj, uid="u-op", operation=operation, old=pod())
    unchanged_with_warning(answer(post(webhook, body), "u-op"), f"handles CREATE, got {operation!r}")


def test_subresources_are_allowed_unchanged(webhook: ThreadServer) -> None:
    body = review({"kind": "Binding"}, uid="u-sub", sub_resource="binding")
    unchanged_with_warning(answer(post(webhook, body), "u-sub"), "ignores subresource 'binding'")


@pytest.mark.parametrize("obj", [[pod()], "a pod", 7, None, True])
def test_pod_that_is_not_an_object_is_allowed_with_a_warning(webhook: ThreadServer, obj: Any) -> None:
    unchanged_with_warning(answer(post(webhook, review(obj, uid="u-obj")), "u-obj"), "not a Pod object")


def test_pod_metadata_that_is_not_an_object_is_allowed_with_a_warning(webhook: ThreadServer) -> None:
    broken = pod()
    broken["metadata"] = ["name", "web"]
    unchanged_with_warning(answer(post(webhook, review(broken, uid="u-md")), "u-md"), "metadata is not an object")


def test_pod_without_any_namespace_is_allowed_with_a_warning(webhook: ThreadServer) -> None:
    nameless = pod()
    del nameless["metadata"]["namespace"]
    result = answer(post(webhook, review(nameless, uid="u-nons", namespace=None)), "u-nons")
    unchanged_with_warning(result, "no namespace")


def test_odd_pod_content_never_fails_the_request(webhook: ThreadServer) -> None:
    """Wrong types inside the Pod go to the core; whatever it makes of them, the answer is 200 + allowed."""
    odd = pod()
    odd["spec"] = {"containers": "web", "initContainers": {"a": 1}, "hostNetwork": "yes"}
    odd["metadata"]["labels"] = ["app"]
    odd["metadata"]["annotations"] = {"lanes.io/warmup": 12, "lanes.io/lane": None}
    result = answer(post(webhook, review(odd, uid="u-odd")), "u-odd")
    assert result["allowed"] is True


def test_deeply_nested_pod_is_answered(webhook: ThreadServer) -> None:
    """900 levels inside the Pod: parses (orjson's limit is 1024), and whatever the core makes of it
    (Python's recursion limit is near), the answer is 200 + allowed."""
    depth = 900
    nested = pod()
    nested["spec"]["extra"] = "PLACEHOLDER"
    text = orjson.dumps(review(nested, uid="u-deep"))
    text = text.replace(b'"PLACEHOLDER"', b'{"d":' * depth + b'"leaf"' + b"}" * depth)
    response = webhook.client.post("/mutate", content=text)
    assert answer(response, "u-deep")["allowed"] is True


def test_core_failure_admits_unchanged_with_warning_log_and_metric(
    webhook: ThreadServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("spec")

    monkeypatch.setattr(core, "admit_pod", broken)
    errors = webhook.metrics.errors.labels("/mutate")
    before = errors._value.get()
    with caplog.at_level("ERROR", logger="lanes.admission"):
        result = answer(post(webhook, review(pod(), uid="u-bug")), "u-bug")
    assert result == {"uid": "u-bug", "allowed": True, "warnings": [INTERNAL_ERROR_WARNING]}
    assert errors._value.get() == before + 1
    record = next(r for r in caplog.records if r.levelname == "ERROR")
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert record.fields["uid"] == "u-bug"  # type: ignore[attr-defined]


def test_core_returning_garbage_is_an_internal_error_not_a_500(
    webhook: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "admit_pod", lambda *a, **k: core.PodAdmission(patch=[{"op": "add", "value": {1, 2}}]))
    result = answer(post(webhook, review(pod(), uid="u-garbage")), "u-garbage")
    assert result == {"uid": "u-garbage", "allowed": True, "warnings": [INTERNAL_ERROR_WARNING]}


def test_core_warnings_reach_the_response_cleaned(webhook: ThreadServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        core,
        "admit_pod",
        lambda *a, **k: core.PodAdmission(warnings=["short", "x" * 300, "tab\there"], skip_reason="t"),
    )
    result = answer(post(webhook, review(pod(), uid="u-warn")), "u-warn")
    assert result["warnings"][0] == "short"
    assert len(result["warnings"][1]) == 120
    assert result["warnings"][2] == "tab here"
    assert "patch" not in result


def test_router_path_answers_like_the_fast_path(webhook: ThreadServer) -> None:
    """The admission endpoints are also ordinary routes, for callers that reach the router directly."""
    app = webhook.server.config.app
    body = orjson.dumps(review(pod(), uid="u-router"))

    async def through_router() -> httpx.Response:
        transport = httpx.ASGITransport(app=app.router)  # type: ignore[union-attr]
        async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
            return await client.post("/mutate", content=body)

    routed = asyncio.run(through_router())
    direct = webhook.client.post("/mutate", content=body)
    assert routed.status_code == direct.status_code == 200
    assert routed.json() == direct.json()
