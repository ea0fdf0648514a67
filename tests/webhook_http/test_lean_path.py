"""The admission fast lane (raw ASGI ``POST /mutate`` in front of FastAPI) on bad input, over real TLS.

The fast lane skips FastAPI's error pages and exception handlers, so it must give every bad request its own precise
answer: never a 500, never a stack trace. And it must answer exactly what the same endpoints answer when routed
through FastAPI (``create_app(fast_lane=False)``, the other side of bench/admission.py's stack comparison).
"""

from __future__ import annotations

import socket

import orjson
import pytest
from starlette.testclient import TestClient

from bench import bodies
from tests.webhook_http.bodies import pod, review
from tests.webhook_http.support import HOST, ThreadServer, client_context
from webhook.admission.app import create_app
from webhook.admission.metrics import Metrics
from webhook.contract.defaults import ClusterDefaults


def _valid() -> bytes:
    return orjson.dumps(review(pod(), uid="u-lean"))


def _no_trace(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text, text


def test_malformed_json_is_400_naming_the_problem(webhook: ThreadServer) -> None:
    response = webhook.client.post("/mutate", content=b'{"apiVersion": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"].startswith("body is not valid JSON: ")
    _no_trace(response.text)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/yaml"])
def test_wrong_content_type_is_415_naming_it(webhook: ThreadServer, content_type: str) -> None:
    counter = webhook.metrics.requests.labels("/mutate", "bad_request")
    before = counter._value.get()
    response = webhook.client.post("/mutate", content=_valid(), headers={"content-type": content_type})
    assert response.status_code == 415
    assert response.json() == {
        "error": f"Content-Type must be application/json (an AdmissionReview), got {content_type!r}"
    }
    assert counter._value.get() == before + 1
    _no_trace(response.text)
    assert webhook.client.get("/healthz").status_code == 200  # the connection and the server carry on


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_content_type_with_parameters_or_case_is_accepted(webhook: ThreadServer, content_type: str) -> None:
    response = webhook.client.post("/mutate", content=_valid(), headers={"content-type": content_type})
    assert response.status_code == 200
    assert response.json()["response"]["uid"] == "u-lean"


def test_huge_declared_body_is_413_before_reading(webhook: ThreadServer) -> None:
    raw = socket.create_connection((HOST, webhook.port))
    with client_context(webhook.pki).wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 8589934592\r\n\r\n{")
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert orjson.loads(body) == {"error": "request body exceeds the 1048576 byte limit"}


def test_unknown_path_and_wrong_method_are_precise(webhook: ThreadServer) -> None:
    unknown = webhook.client.post("/mutate/pods", content=_valid(), headers={"content-type": "application/json"})
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Not Found"}
    wrong = webhook.client.put("/mutate", content=_valid(), headers={"content-type": "application/json"})
    assert wrong.status_code == 405
    _no_trace(unknown.text + wrong.text)


@pytest.mark.parametrize(
    ("name", "body", "content_type"),
    [
        ("small", bodies.encoded("small"), "application/json"),
        ("large", bodies.encoded("large"), "application/json"),
        ("not json", b"{nope", "application/json"),
        ("wrong type", bodies.encoded("small"), "text/plain"),
    ],
)
def test_fast_lane_answers_what_the_fastapi_route_answers(name: str, body: bytes, content_type: str) -> None:
    answers = []
    for fast_lane in (True, False):
        app = create_app(ClusterDefaults(), None, metrics=Metrics(), fast_lane=fast_lane)
        with TestClient(app) as client:
            response = client.post("/mutate", content=body, headers={"content-type": content_type})
        answers.append((response.status_code, response.headers["content-type"], response.content))
    assert answers[0] == answers[1]
