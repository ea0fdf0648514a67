"""AdmissionReview v1 parsing and response building, without a server (webhook.admission.codec)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from tests.webhook_http.bodies import pod, review
from webhook.admission.codec import (
    API_VERSION,
    MAX_WARNING_LENGTH,
    ReviewError,
    allow,
    clean_warning,
    deny,
    parse_review,
)


def encode(value: Any) -> bytes:
    return orjson.dumps(value)


def test_parses_the_fields_the_webhook_uses() -> None:
    body = review(pod(), uid="abc", namespace="shop", dry_run=True)
    req = parse_review(encode(body))
    assert req.uid == "abc"
    assert (req.kind.group, req.kind.version, req.kind.kind) == ("", "v1", "Pod")
    assert req.resource is not None and req.resource.resource == "pods"
    assert req.operation == "CREATE"
    assert req.namespace == "shop"
    assert req.name == "web-7d9c"
    assert req.dry_run is True
    assert req.object == body["request"]["object"]
    assert req.sub_resource == ""


def test_optional_fields_may_be_absent_or_null() -> None:
    body = {
        "apiVersion": API_VERSION,
        "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": {"kind": "Pod"}, "operation": "CREATE", "namespace": None},
    }
    req = parse_review(encode(body))
    assert req.namespace == "" and req.name == "" and req.resource is None
    assert req.object is None and req.dry_run is False


def _with(path: list[str], value: Any) -> bytes:
    body: dict[str, Any] = review(pod())
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return encode(body)


_DELETE = object()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body is empty"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "Admiss', "body is not valid JSON"),
        (b"<xml/>", "body is not valid JSON"),
        (b"\xff\xfe{}", "body is not valid JSON"),
        (b"[]", "body must be a JSON object (an AdmissionReview), got array"),
        (b'"AdmissionReview"', "got string"),
        (b"null", "got null"),
        (_with(["apiVersion"], _DELETE), "apiVersion is missing"),
        (_with(["apiVersion"], "admission.k8s.io/v1beta1"), "apiVersion must be 'admission.k8s.io/v1', got 'admission"),
        (_with(["apiVersion"], 1), "apiVersion must be 'admission.k8s.io/v1', got number"),
        (_with(["kind"], "Pod"), "kind must be 'AdmissionReview', got 'Pod'"),
        (_with(["kind"], _DELETE), "kind is missing"),
        (_with(["request"], _DELETE), "AdmissionReview.request is missing"),
        (_with(["request"], "CREATE pod"), "AdmissionReview.request must be an object, got string"),
        (_with(["request"], [1, 2]), "AdmissionReview.request must be an object, got array"),
        (_with(["request", "uid"], _DELETE), "request.uid is missing"),
        (_with(["request", "uid"], ""), "request.uid is empty"),
        (_with(["request", "uid"], 42), "request.uid must be a string, got number"),
        (_with(["request", "kind"], _DELETE), "request.kind is missing"),
        (_with(["request", "kind"], "Pod"), "request.kind must be an object, got string"),
        (_with(["request", "kind", "kind"], _DELETE), "request.kind.kind is missing"),
        (_with(["request", "kind", "kind"], ["Pod"]), "request.kind.kind must be a string, got array"),
        (_with(["request", "resource"], "pods"), "request.resource must be an object, got string"),
        (_with(["request", "operation"], _DELETE), "request.operation is missing"),
        (_with(["request", "operation"], True), "request.operation must be a string, got boolean"),
        (_with(["request", "namespace"], {"name": "shop"}), "request.namespace must be a string, got object"),
        (_with(["request", "dryRun"], "yes"), "request.dryRun must be a boolean, got string"),
    ],
)
def test_not_an_admission_review_names_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(ReviewError) as caught:
        parse_review(body)
    assert message in str(caught.value)


def test_object_may_be_anything_at_parse_time() -> None:
    for value in ([1, 2], "pod", 3, None, {"metadata": "x"}):
        assert parse_review(encode(review(value))).object == value


def decode(response: bytes) -> dict[str, Any]:
    envelope = orjson.loads(response)
    assert envelope["apiVersion"] == API_VERSION and envelope["kind"] == "AdmissionReview"
    result: dict[str, Any] = envelope["response"]
    return result


def test_allow_without_patch_has_no_patch_fields() -> None:
    response = decode(allow("u1"))
    assert response == {"uid": "u1", "allowed": True}


def test_allow_with_patch_is_base64_json_patch() -> None:
    ops = [{"op": "add", "path": "/metadata/labels/x", "value": "ü"}]
    response = decode(allow("u1", ops, ["careful"]))
    assert response["patchType"] == "JSONPatch"
    assert orjson.loads(base64.b64decode(response["patch"])) == ops
    assert response["warnings"] == ["careful"]


def test_deny_carries_status_400_and_message() -> None:
    response = decode(deny("u2", "lanes.io/warmup: 'soon' is not a duration; e.g. 90s"))
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert response["status"]["message"] == "lanes.io/warmup: 'soon' is not a duration; e.g. 90s"


def test_warnings_are_made_acceptable_to_the_api_server() -> None:
    assert clean_warning("ok") == "ok"
    long = clean_warning("x" * 500)
    assert len(long) == MAX_WARNING_LENGTH and long.endswith("\u2026")
    assert clean_warning("bad\nline\x00") == "bad line "
    assert clean_warning("") == "(empty warning)"
    assert clean_warning("名前 ✓") == "名前 ✓"
