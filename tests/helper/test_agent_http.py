"""The agent's HTTP server as a kubelet, a scanner or a broken client sees it: raw bytes over real sockets."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helper.procs import Agent


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    running = Agent.start(Path(tmp_path_factory.mktemp("agent-http")))
    running.wait_ready(timeout=5)
    yield running
    running.kill()


def exchange(port: int, data: bytes, *, timeout: float = 5.0, half_close: bool = True) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:80]
    return int(response[9:12])


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)) + b"\r\n\r\n", 400),  # a TLS hello
        (b"garbage\r\n\r\n", 400),
        (b"GET /ready\r\n\r\n", 400),  # HTTP/0.9
        (b"GET /ready HTTP/2.0\r\n\r\n", 505),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),  # h2 prior-knowledge preface
        (b"GET /ready HTTP/1.1 extra\r\n\r\n", 400),
        (b"G\x00T /ready HTTP/1.1\r\n\r\n", 400),
        (b"GET /re\x01dy HTTP/1.1\r\n\r\n", 400),
        (b"GET ready HTTP/1.1\r\n\r\n", 400),
        (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /ready HTTP/1.1\r\nX: " + b"b" * 10000 + b"\r\n\r\n", 431),
        (b"GET /ready HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n", 431),
        (b"GET /ready HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 6000) for i in range(3)) + b"\r\n", 431),
        (b"GET /ready HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET /ready HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        (b"GET /ready HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET /ready HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
        (b"POST /prestop HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /prestop HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /prestop HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"POST /prestop HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"POST /prestop HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST /prestop HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST /prestop HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST /status HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 400),  # body cut short by the peer
        (b"GET /ready HTTP/1.1\r\nHost: x\r\n", 400),  # header section cut short
    ],
)
def test_malformed_requests_get_a_clean_error(agent: Agent, request_bytes: bytes, status: int) -> None:
    response = exchange(agent.port, request_bytes)
    assert status_of(response) == status
    assert b"\r\nConnection: close\r\n" in response
    assert agent.get("/healthz")[0] == 200


def test_early_closes_and_empty_connections_are_harmless(agent: Agent) -> None:
    assert exchange(agent.port, b"") == b""
    assert status_of(exchange(agent.port, b"\r\n" * 5)) == 400  # a few empty lines are tolerated, not endless
    with socket.create_connection(("127.0.0.1", agent.port)) as sock:
        sock.sendall(b"GET /ready HTTP/1.1\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    assert agent.get("/healthz")[0] == 200


def test_keep_alive_and_pipelining(agent: Agent) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    response = exchange(agent.port, request * 3 + b"GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert response.count(b"HTTP/1.1 200 OK") == 4
    assert response.count(b"Connection: keep-alive") == 3 and response.endswith(b"ready\n")


def test_http10_closes_unless_asked_to_keep_alive(agent: Agent) -> None:
    once = exchange(agent.port, b"GET /healthz HTTP/1.0\r\n\r\n", half_close=False)
    assert status_of(once) == 200 and b"Connection: close" in once
    kept = exchange(
        agent.port,
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n",
        half_close=False,
    )
    assert kept.count(b"200 OK") == 2


def test_methods_paths_and_head(agent: Agent) -> None:
    head = exchange(agent.port, b"HEAD /ready HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status_of(head) == 200 and b"Content-Length: 6" in head and head.endswith(b"\r\n\r\n")
    assert agent.get("/ready", method="POST")[0] == 405
    assert agent.get("/prestop", method="DELETE")[0] == 405
    assert agent.get("/nope")[0] == 404
    assert agent.get("/ready/")[0] == 200  # trailing slash tolerated
    assert agent.get("/ready?verbose=1")[0] == 200
    absolute = exchange(agent.port, b"GET http://agent:15400/healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status_of(absolute) == 200


def test_chunked_and_expect_continue_bodies(agent: Agent) -> None:
    chunked = exchange(
        agent.port,
        b"POST /status HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
    )
    assert status_of(chunked) == 405  # parsed fully, then refused by the route
    with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"body")
        assert b"405" in sock.recv(1000)


def test_protocol_errors_are_counted(agent: Agent) -> None:
    exchange(agent.port, b"nonsense\r\n\r\n")
    metrics = agent.get("/metrics")[1].decode()
    count = next(line for line in metrics.splitlines() if line.startswith("lanes_agent_http_protocol_errors_total"))
    assert int(count.split()[1]) >= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        st.builds(
            lambda method, target, rest: method + b" " + target + b" HTTP/1.1\r\n" + rest,
            st.sampled_from([b"GET", b"POST", b"HEAD", b"\x00", b""]),
            st.binary(max_size=64),
            st.binary(max_size=512),
        ),
    )
)
def test_fuzzed_input_never_breaks_the_agent(agent: Agent, data: bytes) -> None:
    response = exchange(agent.port, data, timeout=15)
    assert response == b"" or response.startswith(b"HTTP/1.1 ")
    assert agent.process.poll() is None


def test_agent_survived_everything(agent: Agent) -> None:
    assert agent.get("/healthz")[0] == 200 and agent.ready()
    assert agent.process.poll() is None
    assert all(line["level"] != "error" for line in agent.logs())
