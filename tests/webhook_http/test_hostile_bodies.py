"""Malformed and hostile requests over real TLS: never a 500, always the right status and a precise error."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import orjson
import pytest

from tests.webhook_http.bodies import pod, review
from tests.webhook_http.support import HOST, ThreadServer, client_context

LIMIT = 1024 * 1024  # the shared `webhook` fixture's --max-body-bytes


def valid() -> dict[str, Any]:
    return review(pod(), uid="u-1")


def broken(mutate: Any) -> bytes:
    body = valid()
    mutate(body)
    return orjson.dumps(body)


CASES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "body is empty"),
    ("truncated", orjson.dumps(valid())[:-7], "body is not valid JSON"),
    ("not json", b"apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\n", "body is not valid JSON"),
    ("form", b"uid=1&kind=Pod", "body is not valid JSON"),
    ("latin-1", '{"kind": "Pöd"}'.encode("latin-1"), "body is not valid JSON"),
    ("nul bytes", b"\x00" * 64, "body is not valid JSON"),
    ("array", orjson.dumps([valid()]), "got array"),
    ("number", b"42", "got number"),
    ("null", b"null", "got null"),
    ("v1beta1", broken(lambda b: b.update(apiVersion="admission.k8s.io/v1beta1")), "apiVersion must be"),
    ("no apiVersion", broken(lambda b: b.pop("apiVersion")), "apiVersion is missing"),
    ("wrong kind", broken(lambda b: b.update(kind="Pod")), "kind must be 'AdmissionReview'"),
    ("no request", broken(lambda b: b.pop("request")), "AdmissionReview.request is missing"),
    ("request string", broken(lambda b: b.update(request="please")), "request must be an object, got string"),
    ("request list", broken(lambda b: b.update(request=[1])), "request must be an object, got array"),
    ("missing uid", broken(lambda b: b["request"].pop("uid")), "request.uid is missing"),
    ("uid number", broken(lambda b: b["request"].update(uid=7)), "request.uid must be a string, got number"),
    ("kind string", broken(lambda b: b["request"].update(kind="Pod")), "request.kind must be an object"),
    ("no operation", broken(lambda b: b["request"].pop("operation")), "request.operation is missing"),
    ("dryRun string", broken(lambda b: b["request"].update(dryRun="true")), "request.dryRun must be a boolean"),
    ("nested too deep", b'{"a":' * 5000 + b"1" + b"}" * 5000, "body is not valid JSON"),
]


@pytest.mark.parametrize("path", ["/mutate", "/validate"])
@pytest.mark.parametrize(("case", "body", "message"), CASES, ids=[c[0] for c in CASES])
def test_not_an_admission_review_is_400_with_a_precise_error(
    webhook: ThreadServer, path: str, case: str, body: bytes, message: str
) -> None:
    response = webhook.client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert message in error, error


def test_body_over_the_limit_is_413(webhook: ThreadServer) -> None:
    body = orjson.dumps(review(pod(annotations={"big": "x" * LIMIT}), uid="u-big"))
    response = webhook.client.post("/mutate", content=body)
    assert response.status_code == 413
    assert response.json() == {"error": f"request body exceeds the {LIMIT} byte limit"}
    # the connection stays usable: the rest of the body was read and discarded
    assert webhook.client.get("/healthz").status_code == 200


def test_chunked_body_over_the_limit_is_413(webhook: ThreadServer) -> None:
    def chunks() -> Any:
        for _ in range(LIMIT // 65536 + 2):
            yield b"x" * 65536

    response = webhook.client.post("/validate", content=chunks())
    assert response.status_code == 413
    assert "byte limit" in response.json()["error"]


def test_body_exactly_at_the_limit_is_parsed(webhook: ThreadServer) -> None:
    body = orjson.dumps(review(pod(), uid="u-edge"))
    body = body[:-1] + b" " * (LIMIT - len(body)) + b"}"
    assert len(body) == LIMIT
    response = webhook.client.post("/validate", content=body)
    assert response.status_code == 200
    assert response.json()["response"]["uid"] == "u-edge"


def test_huge_declared_length_is_refused_without_reading_it(webhook: ThreadServer) -> None:
    """A client claiming 1 GiB gets its 413 at once; nothing is buffered, and the connection is closed."""
    raw = socket.create_connection((HOST, webhook.port))
    with client_context(webhook.pki).wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(
            b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1073741824\r\n\r\n" + b"{" * 1000
        )
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    assert b"byte limit" in body


@pytest.mark.parametrize("path", ["/mutate", "/validate"])
def test_wrong_method_is_405_not_500(webhook: ThreadServer, path: str) -> None:
    assert webhook.client.get(path).status_code == 405


def test_unknown_path_is_404(webhook: ThreadServer) -> None:
    assert webhook.client.post("/mutate-pods", content=b"{}").status_code == 404


def test_garbage_http_is_rejected_and_server_keeps_serving(webhook: ThreadServer) -> None:
    raw = socket.create_connection((HOST, webhook.port))
    with client_context(webhook.pki).wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"\x16\x03\x01 NOT HTTP AT ALL\r\n\r\n")
        reply = tls.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert webhook.client.get("/healthz").status_code == 200


def test_plain_http_on_the_tls_port_fails_cleanly(webhook: ThreadServer) -> None:
    with socket.create_connection((HOST, webhook.port)) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.settimeout(10)
        try:
            reply = raw.recv(1024)
        except (ConnectionResetError, TimeoutError):
            reply = b""
    assert not reply.startswith(b"HTTP/1.1 200")
    assert webhook.client.get("/healthz").status_code == 200


def test_bad_requests_are_counted_as_such(webhook: ThreadServer) -> None:
    """Every case again on one keep-alive connection; each lands in the bad_request counter, none elsewhere."""
    counter = webhook.metrics.requests
    before = {p: counter.labels(p, "bad_request")._value.get() for p in ("/mutate", "/validate")}
    errors_before = webhook.metrics.errors.labels("/mutate")._value.get()
    for _case, body, _message in CASES:
        for path in ("/mutate", "/validate"):
            assert webhook.client.post(path, content=body).status_code == 400
    for path in ("/mutate", "/validate"):
        assert counter.labels(path, "bad_request")._value.get() == before[path] + len(CASES)
    assert webhook.metrics.errors.labels("/mutate")._value.get() == errors_before


def test_tls_client_without_the_ca_is_refused(webhook: ThreadServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        raw = socket.create_connection((HOST, webhook.port))
        ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
