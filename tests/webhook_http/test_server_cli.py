"""`lanes-webhook serve`: help, and startup errors as one line with exit status 2 (no traceback)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from tests.webhook_http.support import CliServer, Pki, SecretVolume, client_context, lanes_webhook


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lanes_webhook(), *args], capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL
    )


def test_serve_help_lists_every_flag() -> None:
    result = run("serve", "--help")
    assert result.returncode == 0
    for flag in (
        "--cert",
        "--key",
        "--port",
        "--host",
        "--defaults",
        "--kubeconfig",
        "--in-cluster",
        "--no-owner-cache",
        "--log-level",
        "--shutdown-delay",
        "--shutdown-timeout",
        "--cert-check-interval",
        "--max-body-bytes",
    ):
        assert flag in result.stdout
    assert "(default: 8443)" in result.stdout


def test_top_level_help() -> None:
    result = run("--help")
    assert result.returncode == 0 and "serve" in result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lanes-webhook: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_certificate_file(tmp_path: Path, secret_volume: SecretVolume) -> None:
    missing = tmp_path / "nope" / "tls.crt"
    result = run("serve", "--cert", str(missing), "--key", str(secret_volume.key), "--no-owner-cache")
    assert_one_line_error(result, f"cannot read certificate file {missing}", "No such file or directory")


def test_unreadable_key_file(tmp_path: Path, secret_volume: SecretVolume) -> None:
    result = run("serve", "--cert", str(secret_volume.cert), "--key", str(tmp_path), "--no-owner-cache")
    assert_one_line_error(result, f"cannot read key file {tmp_path}", "Is a directory")


def test_key_that_does_not_match(tmp_path: Path, secret_volume: SecretVolume) -> None:
    other = tmp_path / "other.key"
    other.write_bytes(Pki.new().key_pem)
    result = run("serve", "--cert", str(secret_volume.cert), "--key", str(other), "--no-owner-cache")
    assert_one_line_error(result, "does not match key", str(other))


def test_missing_required_flags_is_a_usage_error() -> None:
    result = run("serve")
    assert result.returncode == 2
    assert "--cert" in result.stderr and "Traceback" not in result.stderr


def test_bad_defaults_file(tmp_path: Path, secret_volume: SecretVolume) -> None:
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("agent_port: not-a-port\n")
    result = run(
        "serve",
        "--cert",
        str(secret_volume.cert),
        "--key",
        str(secret_volume.key),
        "--defaults",
        str(defaults),
        "--no-owner-cache",
    )
    assert_one_line_error(result, str(defaults), "agent")


def test_missing_defaults_file(tmp_path: Path, secret_volume: SecretVolume) -> None:
    defaults = tmp_path / "absent.yaml"
    result = run(
        "serve",
        "--cert",
        str(secret_volume.cert),
        "--key",
        str(secret_volume.key),
        "--defaults",
        str(defaults),
        "--no-owner-cache",
    )
    assert_one_line_error(result, str(defaults))


def test_no_cluster_credentials(tmp_path: Path, secret_volume: SecretVolume) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(tmp_path)
    result = run("serve", "--cert", str(secret_volume.cert), "--key", str(secret_volume.key), env=env)
    assert_one_line_error(result, "--kubeconfig FILE, --in-cluster or --no-owner-cache")


def test_missing_kubeconfig(tmp_path: Path, secret_volume: SecretVolume) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    result = run(
        "serve", "--cert", str(secret_volume.cert), "--key", str(secret_volume.key), "--kubeconfig", str(kubeconfig)
    )
    assert_one_line_error(result, f"cannot read kubeconfig {kubeconfig}")


def test_owner_cache_flags_are_exclusive(secret_volume: SecretVolume) -> None:
    result = run(
        "serve", "--cert", str(secret_volume.cert), "--key", str(secret_volume.key), "--in-cluster", "--no-owner-cache"
    )
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_serves_with_a_defaults_file(
    tmp_path: Path, pki: Pki, secret_volume: SecretVolume, cli_server_factory: Callable[..., CliServer]
) -> None:
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("lane: blue\ntag_header: x-env\n")
    server = cli_server_factory(secret_volume, pki, "--defaults", str(defaults), "--log-level", "warning")
    response = httpx.get(server.url + "/healthz", verify=client_context(pki))
    assert response.status_code == 200
    server.terminate()
    assert server.process.wait(timeout=30) == 0


def test_serve_runs_on_httptools_and_uvloop_and_says_so(
    pki: Pki, secret_volume: SecretVolume, cli_server_factory: Callable[..., CliServer]
) -> None:
    """The stack chosen on evidence (docs/performance.md section 1) is the one `lanes-webhook serve` really runs:
    its compiled parser and loop are loaded into the serving process, and the start-up line names them."""
    server = cli_server_factory(secret_volume, pki)
    response = httpx.post(server.url + "/mutate", content=b"{}", verify=client_context(pki),
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400  # an answer through the parser, not just a listening socket
    maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    assert "/uvloop/loop." in maps, "uvloop's extension is not loaded in the serving process"
    assert "/httptools/parser/parser." in maps, "httptools' parser is not loaded in the serving process"
    starting = [orjson.loads(line) for line in server.log().splitlines()
                if line.startswith("{") and '"msg":"starting"' in line]
    assert len(starting) == 1 and starting[0]["http"] == "httptools" and starting[0]["loop"] == "uvloop", starting
    server.terminate()
    assert server.process.wait(timeout=30) == 0


@pytest.mark.parametrize("flag", [("--port", "0"), ("--port", "70000"), ("--cert-check-interval", "0")])
def test_out_of_range_numbers(secret_volume: SecretVolume, flag: tuple[str, str]) -> None:
    result = run("serve", "--cert", str(secret_volume.cert), "--key", str(secret_volume.key), "--no-owner-cache", *flag)
    assert_one_line_error(result, flag[0])
