"""``lanes-helper prewarm`` against real TCP, HTTP and HTTPS listeners, run as the init container runs it."""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helper.cli import main
from tests.helper.procs import run_helper
from tests.helper.servers import HttpServer, SilentListener, closed_port


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``lanes-helper ARGS`` in this process (same code path as the console script, minus a fork):
    returns (exit status, stdout, stderr). Used where the process boundary adds nothing but time."""
    for name in [name for name in os.environ if name.startswith("LANES_")]:
        monkeypatch.delenv(name)

    def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        code = main(args)
        out, err = capsys.readouterr()
        for name in env or {}:
            monkeypatch.delenv(name)
        return code, out, err

    return run


def lines_by_target(stdout: str) -> dict[str, str]:
    """Map each target to its output line (the line's second field), plus "summary"."""
    result: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("prewarm: "):
            result["summary"] = line
        else:
            result[line.split()[1]] = line
    return result


def test_reachable_targets_of_every_kind(ca_file: Path, server_tls: ssl.SSLContext) -> None:
    with SilentListener() as tcp, HttpServer() as http, HttpServer(server_tls) as https:
        targets = [
            f"tcp://127.0.0.1:{tcp.port}",
            "dns://localhost",
            f"http://127.0.0.1:{http.port}/#200",
            f"http://localhost:{http.port}/empty#204",
            f"https://localhost:{https.port}/",
        ]
        result = run_helper(["prewarm", *targets, "--ca-file", str(ca_file), "--deadline", "10"])
    assert result.returncode == 0, result
    lines = lines_by_target(result.stdout)
    for target in targets:
        assert lines[target].startswith("ok   "), lines[target]
        assert "resolved=127.0.0.1" in lines[target] and "attempts=1" in lines[target]
    assert "connect=" in lines[targets[0]] and "status=" not in lines[targets[0]]
    assert "connect=" not in lines["dns://localhost"]
    assert "status=200" in lines[targets[2]] and "status=204" in lines[targets[3]]
    assert "tls=TLSv1." in lines[targets[4]] and "handshake=" in lines[targets[4]] and "status=200" in lines[targets[4]]
    assert "5/5 targets reachable" in lines["summary"] and "all reachable" in lines["summary"]


def test_untrusted_certificate_is_reported_once_not_retried(server_tls: ssl.SSLContext) -> None:
    with HttpServer(server_tls) as https:
        target = f"https://localhost:{https.port}/"
        result = run_helper(["prewarm", target, "--deadline", "10", "--timeout", "2"])
    assert result.returncode == 0  # policy warn
    line = lines_by_target(result.stdout)[target]
    assert line.startswith("FAIL ")
    assert "TLS certificate verification failed" in line and "attempts=1" in line


def test_ca_file_from_env(ca_file: Path, server_tls: ssl.SSLContext) -> None:
    with HttpServer(server_tls) as https:
        target = f"https://127.0.0.1:{https.port}/"
        result = run_helper(["prewarm"], {"LANES_PREWARM_TARGETS": target, "LANES_PREWARM_CA_FILE": str(ca_file)})
    assert lines_by_target(result.stdout)[target].startswith("ok   ")


def test_insecure_mode_connects_and_says_unverified(server_tls: ssl.SSLContext) -> None:
    with HttpServer(server_tls) as https:
        target = f"https://localhost:{https.port}/"
        result = run_helper(["prewarm", target], {"LANES_PREWARM_INSECURE": "true"})
    lines = lines_by_target(result.stdout)
    assert lines[target].startswith("ok   ") and "/unverified" in lines[target]
    assert "NOT verified" in lines["summary"]


def test_tls_to_a_plain_http_port_explains_itself(cli: Callable[..., tuple[int, str, str]]) -> None:
    with HttpServer() as http:
        target = f"https://127.0.0.1:{http.port}/"
        _, out, _ = cli(["prewarm", target, "--deadline", "0.3", "--insecure"])
    line = lines_by_target(out)[target]
    assert "TLS handshake failed" in line and "plain HTTP" in line


def test_closed_port_and_unresolvable_names_fail_within_the_deadline() -> None:
    port = closed_port()
    targets = [f"tcp://127.0.0.1:{port}", "tcp://no-such-host.invalid:80", "dns://no-such-host.invalid"]
    started = time.monotonic()
    result = run_helper(["prewarm", *targets, "--deadline", "1.5", "--timeout", "1"])
    elapsed = time.monotonic() - started
    assert result.returncode == 0  # warn never blocks the pod
    lines = lines_by_target(result.stdout)
    assert "connection refused" in lines[targets[0]]
    assert "cannot resolve no-such-host.invalid" in lines[targets[1]]
    assert "cannot resolve no-such-host.invalid" in lines[targets[2]] and "resolved=-" in lines[targets[2]]
    for target in targets:
        assert lines[target].startswith("FAIL ")
        attempts = int(lines[target].split("attempts=")[1].split()[0])
        assert attempts >= 2  # retried with backoff until the deadline
    assert "0/3 targets reachable" in lines["summary"] and "starting anyway" in lines["summary"]
    assert elapsed < 1.5 + 3.0


def test_server_that_accepts_but_never_answers_times_out_per_attempt() -> None:
    with SilentListener() as silent:
        http_target = f"http://127.0.0.1:{silent.port}/healthz"
        https_target = f"https://127.0.0.1:{silent.port}/"
        started = time.monotonic()
        result = run_helper(["prewarm", http_target, https_target, "--timeout", "0.4", "--deadline", "2"])
        elapsed = time.monotonic() - started
    lines = lines_by_target(result.stdout)
    assert "timed out after 0.4s during response" in lines[http_target]
    assert "timed out after 0.4s during TLS handshake" in lines[https_target]
    assert "connect=" in lines[http_target]  # the TCP connection itself succeeded
    assert int(lines[http_target].split("attempts=")[1].split()[0]) >= 2
    assert elapsed < 2 + 3.0  # the overall deadline holds


def test_unexpected_status(cli: Callable[..., tuple[int, str, str]]) -> None:
    with HttpServer() as http:
        down = f"http://127.0.0.1:{http.port}/down"
        wrong = f"http://127.0.0.1:{http.port}/#204"
        _, out, _ = cli(["prewarm", down, wrong, "--deadline", "0.6"])
    lines = lines_by_target(out)
    assert "status=503" in lines[down] and "HTTP 503 (server error)" in lines[down]
    assert "HTTP 200, expected 204" in lines[wrong]


def test_require_policy_exits_1_when_unreachable_and_0_when_reachable() -> None:
    port = closed_port()
    result = run_helper(["prewarm", f"tcp://127.0.0.1:{port}", "--policy", "require", "--deadline", "0.5"])
    assert result.returncode == 1
    assert "policy=require: failing the init container" in result.stdout
    with SilentListener() as tcp:
        result = run_helper(["prewarm", f"tcp://127.0.0.1:{tcp.port}"], {"LANES_PREWARM_POLICY": "require"})
    assert result.returncode == 0


def test_dependency_that_comes_up_late_is_retried_until_reachable() -> None:
    with HttpServer() as http:
        target = f"http://127.0.0.1:{http.port}/flaky"
        result = run_helper(["prewarm", target, "--policy", "require", "--deadline", "10"])
    assert result.returncode == 0, result.stdout
    line = result.stdout.splitlines()[0]
    assert line.startswith("ok   ") and "status=200" in line and "attempts=3" in line


def test_env_settings_and_argument_precedence(cli: Callable[..., tuple[int, str, str]]) -> None:
    port = closed_port()
    env = {
        "LANES_PREWARM_TARGETS": f"tcp://127.0.0.1:{port}",
        "LANES_PREWARM_POLICY": "require",
        "LANES_PREWARM_DEADLINE": "0.3",
        "LANES_PREWARM_TIMEOUT": "0.2",
    }
    assert cli(["prewarm"], env)[0] == 1
    assert cli(["prewarm", "--policy", "warn"], env)[0] == 0  # argument wins
    with SilentListener() as tcp:
        code, out, _ = cli(["prewarm", f"tcp://127.0.0.1:{tcp.port}"], env)  # target arguments win
    assert code == 0 and f"tcp://127.0.0.1:{port}" not in out


def test_json_output(cli: Callable[..., tuple[int, str, str]]) -> None:
    with HttpServer() as http:
        target = f"http://127.0.0.1:{http.port}/"
        _, out, _ = cli(["prewarm", target, "--output", "json"])
    first, summary = (json.loads(line) for line in out.splitlines())
    assert first["target"] == target and first["ok"] is True and first["status"] == 200
    assert first["resolved"] == ["127.0.0.1"] and first["attempts"] == 1 and first["error"] is None
    assert summary["reachable"] == 1 and summary["targets"] == 1


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["postgres:5432"], {}, "bad prewarm target 'postgres:5432': missing scheme"),
        (["tcp://db"], {}, "bad prewarm target 'tcp://db': tcp:// needs a port"),
        ([], {"LANES_PREWARM_TARGETS": "tcp://ok:1,gopher://x"}, "LANES_PREWARM_TARGETS: bad prewarm target"),
    ],
)
def test_malformed_targets_exit_2_quoting_them_and_showing_the_forms(
    cli: Callable[..., tuple[int, str, str]], args: list[str], env: dict[str, str], expected: str
) -> None:
    code, out, err = cli(["prewarm", *args], env)
    assert code == 2
    assert expected in err
    assert "accepted target forms:" in err and "dns://HOST" in err
    assert out == ""


def test_malformed_target_exits_2_as_a_process() -> None:
    result = run_helper(["prewarm", "tcp://ok:1", "http//missing-colon"])
    assert result.returncode == 2
    assert "bad prewarm target 'http//missing-colon'" in result.stderr and "accepted target forms" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--deadline", "-3"], {}, "--deadline='-3': want plain seconds"),
        (["--timeout", "abc"], {}, "--timeout='abc'"),
        ([], {"LANES_PREWARM_DEADLINE": "100000"}, "LANES_PREWARM_DEADLINE='100000'"),
        ([], {"LANES_PREWARM_TIMEOUT": "0"}, "LANES_PREWARM_TIMEOUT='0'"),
        ([], {"LANES_PREWARM_POLICY": "block"}, "LANES_PREWARM_POLICY='block'"),
        ([], {"LANES_PREWARM_INSECURE": "maybe"}, "LANES_PREWARM_INSECURE='maybe'"),
    ],
)
def test_bad_settings_exit_2(
    cli: Callable[..., tuple[int, str, str]], args: list[str], env: dict[str, str], expected: str
) -> None:
    code, _, err = cli(["prewarm", "tcp://db:5432", *args], env)
    assert code == 2
    assert expected in err


def test_unloadable_ca_file_exits_2(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("this is not a certificate\n")
    code, _, err = cli(["prewarm", "https://localhost:1/", "--ca-file", str(bogus)])
    assert code == 2
    assert "cannot load CA file" in err
