"""SIGTERM: readiness off first, keep serving through the delay, then stop accepting and finish in-flight work."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx
import orjson

from tests.webhook_http.bodies import pod, review
from tests.webhook_http.support import HOST, CliServer, Pki, SecretVolume, client_context


def wait_until(condition: Callable[[], bool], what: str, server: CliServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{server.log()}"
        time.sleep(0.05)


def refuses_connections(server: CliServer) -> bool:
    try:
        socket.create_connection((HOST, server.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_drains_then_finishes_in_flight_requests_and_exits_0(
    pki: Pki, secret_volume: SecretVolume, cli_server_factory: Callable[..., CliServer]
) -> None:
    server = cli_server_factory(secret_volume, pki, "--shutdown-delay", "5")
    context = client_context(pki)
    body = orjson.dumps(review(pod(), uid="in-flight"))

    # An admission request is mid-upload when the signal arrives.
    in_flight = context.wrap_socket(socket.create_connection((HOST, server.port)), server_hostname="localhost")
    in_flight.sendall(
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:100]
    )
    client = httpx.Client(base_url=server.url, verify=context, timeout=10)
    assert client.get("/readyz").status_code == 200

    server.terminate()

    # During the delay: not ready (so the Service drops us), yet still answering admission calls, each
    # answer closing its connection so the API server reconnects to a pod that stays.
    wait_until(lambda: client.get("/readyz").status_code == 503, "readyz 503", server)
    assert client.get("/readyz").json() == {"status": "not ready", "reason": "shutting down"}
    assert client.get("/healthz").status_code == 200
    during = client.post("/mutate", content=orjson.dumps(review(pod(), uid="during-delay")))
    assert during.status_code == 200 and during.json()["response"]["uid"] == "during-delay"
    assert during.headers["connection"] == "close"
    assert server.process.poll() is None

    # After the delay the listener closes, but the process waits for the request it is still receiving.
    wait_until(lambda: refuses_connections(server), "the listener to close", server)
    assert server.process.poll() is None
    in_flight.sendall(body[100:])
    reply = b""
    while chunk := in_flight.recv(65536):
        reply += chunk
    in_flight.close()
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    response = orjson.loads(payload)["response"]
    assert response["uid"] == "in-flight" and response["allowed"] is True and response["patchType"] == "JSONPatch"

    assert server.process.wait(timeout=30) == 0
    client.close()
    log = server.log()
    assert "Traceback" not in log
    assert '"msg":"shutdown requested: readiness off, serving for 5.0s before closing"' in log


def test_second_signal_skips_the_rest_of_the_delay(
    pki: Pki, secret_volume: SecretVolume, cli_server_factory: Callable[..., CliServer]
) -> None:
    server = cli_server_factory(secret_volume, pki, "--shutdown-delay", "600")
    context = client_context(pki)
    server.terminate()
    wait_until(lambda: httpx.get(server.url + "/readyz", verify=context).status_code == 503, "readyz 503", server)
    server.terminate()
    assert server.process.wait(timeout=30) == 0
    assert "second shutdown request" in server.log()
