"""The real-node lossless benchmark's arithmetic (bench/lossless_node.py) and its load client against a real sample
app on loopback; the benchmark itself needs a real node and runs in ``make bench``."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import lossless_node
from bench import run as bench_run

REPO = Path(__file__).resolve().parents[2]


def test_summarize_splits_steady_from_the_disruption_and_counts_retries() -> None:
    records = [
        ["new", 10.0, 0.002, "ok", False], ["new", 11.0, 0.004, "ok", False],
        ["new", 20.5, 0.050, "ok", False], ["new", 21.0, 2.0, "timeout", False],
        ["keepalive", 20.6, 0.003, "ok", True], ["keepalive", 9.0, 0.001, "ok", False],
        ["new", 40.0, 0.001, "ok", False],  # after the window: neither steady nor during
    ]
    new = lossless_node.summarize(records, begin=20.0, end=25.0, mode="new")
    assert new["requests"] == 5 and new["failed"] == 1 and new["errors"] == {"timeout": 1}
    assert new["failed_at_s"] == [1.0]
    assert new["steady_p99_ms"] is not None and new["steady_p99_ms"] < 5
    assert new["during_p99_ms"] > 1000 and new["p99_ratio"] > 100
    keep = lossless_node.summarize(records, begin=20.0, end=25.0, mode="keepalive")
    assert keep["failed"] == 0 and keep["retried"] == 1 and keep["failed_without_retry"] == 1


def _case(kind: str, app: str, failed_new: int, failed_keep: int) -> dict[str, object]:
    def mode(failed: int) -> dict[str, object]:
        return {"requests": 100, "failed": failed, "failed_without_retry": failed, "p99_ratio": 1.5}

    return {"namespace": kind, "app": app, "disruption": "rollout", "duration_s": 9.0,
            "modes": {"new": mode(failed_new), "keepalive": mode(failed_keep)}}


def test_summary_keeps_abrupt_keepalive_out_of_the_claim_and_the_row_says_met() -> None:
    cases = [_case("plain", "abrupt", 30, 4), _case("lanes", "abrupt", 0, 2), _case("lanes", "graceful", 0, 0),
             _case("plain", "graceful", 25, 0)]
    totals = lossless_node.summary(cases)
    assert totals["lanes"]["failed_claimed"] == 0 and totals["lanes"]["failed_all"] == 2
    assert totals["plain"]["failed_claimed"] == 55
    rows = bench_run.targets("lossless_node", {"summary": totals})
    assert rows[0]["status"] == "met" and "Lanes 0 of 300" in rows[0]["measured"]
    assert all(r["status"] == "n/a" for r in rows[1:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(port: int, path: str, body: dict[str, object]) -> dict[str, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", path, body=json.dumps(body))
    answer: dict[str, object] = json.loads(connection.getresponse().read())
    connection.close()
    return answer


def test_load_client_counts_what_an_app_stop_costs(tmp_path: Path) -> None:
    """The client against the sample app on loopback: all ok while it runs; after an abrupt exit, refused."""
    app_port = _free_port()
    app = subprocess.Popen([sys.executable, str(REPO / "examples" / "sample-app" / "app.py")],
                           env={"PORT": str(app_port), "BIND": "127.0.0.1", "SIGTERM": "abrupt"},
                           stdout=subprocess.DEVNULL)
    source = (REPO / "bench" / "lossless_node_client.py").read_text()
    control = _free_port()
    script = tmp_path / "client.py"
    script.write_text(source.replace("CONTROL_PORT = 9000", f"CONTROL_PORT = {control}"))
    client = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL)
    try:
        for target in (app_port, control):
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", target), timeout=1).close()
                    break
                except ConnectionRefusedError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
        _post(control, "/start", {"host": "127.0.0.1", "port": app_port, "rate": 40, "connections": 2})
        time.sleep(1.5)
        stopped_at = time.time()
        app.send_signal(signal.SIGTERM)
        app.wait(10)
        time.sleep(0.5)
        records = _post(control, "/stop", {})["records"]
    finally:
        for process in (app, client):
            if process.poll() is None:
                process.kill()
            process.wait()
    assert isinstance(records, list)
    before = [r for r in records if r[1] < stopped_at - 0.2]
    after = [r for r in records if r[1] > stopped_at + 0.2]
    assert {r[0] for r in before} == {"keepalive", "new"}
    assert before and all(r[3] == "ok" for r in before)
    assert after and all(r[3] != "ok" for r in after)
    assert {r[3] for r in after if r[0] == "new"} == {"refused"}
