"""``prewarm-policy: require`` on pods whose restartPolicy is Never (Jobs, bare pods), with real processes.

The kubelet does not run a failed init container of such a pod again: the pod fails. So the promise of
``require`` (the app never starts against a missing dependency, and starts once it is there) must be kept by the
prewarm itself: it retries in-process past its deadline instead of exiting 1 at the first missed deadline.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

from tests.helper.procs import run_helper
from tests.helper.servers import HttpServer, closed_port


def _listen_later(port: int, delay: float, stop: threading.Event) -> threading.Thread:
    """Open ``port`` after ``delay`` seconds (a dependency that comes up late) and keep it open until ``stop``."""

    def run() -> None:
        time.sleep(delay)
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen(16)
            server.settimeout(0.05)
            while not stop.is_set():
                try:
                    server.accept()[0].close()
                except TimeoutError:
                    continue

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_never_restarted_pod_keeps_retrying_past_the_deadline_until_reachable() -> None:
    port = closed_port()
    stop = threading.Event()
    _listen_later(port, 2.5, stop)  # up only after two and a half deadlines of 1 s
    try:
        result = run_helper(
            ["prewarm", f"tcp://127.0.0.1:{port}", "--policy", "require", "--deadline", "1", "--timeout", "0.5"],
            {"LANES_POD_RESTART_POLICY": "Never"},
            timeout=30,
        )
    finally:
        stop.set()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    retrying = [line for line in lines if "retrying in-process" in line]
    assert len(retrying) >= 2, result.stdout  # one report per missed deadline
    assert "restartPolicy Never" in retrying[0]
    assert lines[-2].startswith("ok   ") and lines[-1].startswith("prewarm: 1/1 targets reachable")


def test_restarted_pods_still_exit_1_at_the_deadline_for_the_kubelet_to_retry() -> None:
    port = closed_port()
    for policy in ("Always", "OnFailure", ""):
        started = time.monotonic()
        result = run_helper(
            ["prewarm", f"tcp://127.0.0.1:{port}", "--policy", "require", "--deadline", "0.5"],
            {"LANES_POD_RESTART_POLICY": policy} if policy else {},
        )
        assert result.returncode == 1, (policy, result.stdout)
        assert "failing the init container" in result.stdout and "retrying in-process" not in result.stdout
        assert time.monotonic() - started < 10


def test_warn_policy_never_retries_past_the_deadline() -> None:
    result = run_helper(
        ["prewarm", f"tcp://127.0.0.1:{closed_port()}", "--deadline", "0.5"], {"LANES_POD_RESTART_POLICY": "Never"}
    )
    assert result.returncode == 0 and "starting anyway" in result.stdout and "retrying" not in result.stdout


def test_untrusted_certificate_fails_a_never_restarted_pod_at_once(server_tls: ssl.SSLContext) -> None:
    with HttpServer(server_tls) as https:
        target = f"https://localhost:{https.port}/"
        started = time.monotonic()
        result = run_helper(
            ["prewarm", target, "--policy", "require", "--deadline", "1"], {"LANES_POD_RESTART_POLICY": "Never"}
        )
    assert result.returncode == 1 and "TLS certificate verification failed" in result.stdout
    assert "retrying in-process" not in result.stdout  # retrying cannot fix a certificate nobody trusts
    assert time.monotonic() - started < 10


def test_bad_restart_policy_is_a_config_error() -> None:
    result = run_helper(["prewarm", "tcp://127.0.0.1:1"], {"LANES_POD_RESTART_POLICY": "Sometimes"})
    assert result.returncode == 2 and "LANES_POD_RESTART_POLICY" in result.stderr and "Traceback" not in result.stderr
