"""Configuration from env vars and arguments: defaults, precedence, and clear errors (exit 2) for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from helper.cli import main
from helper.config import agent_config, prewarm_config
from helper.env import ConfigError
from helper.specs import WarmupRequest
from tests.helper.procs import run_helper


def test_agent_defaults() -> None:
    config = agent_config(environ={})
    assert config.port == 15400
    assert config.app_port is None and config.ready_path is None and config.ready_scheme == "http"
    assert config.drain == 10.0 and config.warmup_window == 0.0 and config.curve_spec == "linear"
    assert config.registries == ("kubernetes",) and config.notify == ()
    assert config.identity.lane == "base" and config.identity.pod  # falls back to the hostname


def test_agent_reads_the_webhook_contract() -> None:
    config = agent_config(
        environ={
            "LANES_AGENT_PORT": "15401",
            "LANES_APP_PORT": "8080",
            "LANES_APP_READY_PATH": "/healthz",
            "LANES_APP_READY_SCHEME": "HTTPS",
            "LANES_WARMUP": "120",
            "LANES_WARMUP_CURVE": "k=2,min=5%",
            "LANES_WARMUP_REQUESTS": "GET /api/items x50 c4",
            "LANES_DRAIN": "12.5",
            "LANES_OFFLINE_NOTIFY": "http://gw:8080/offline,https://reg/x",
            "LANES_LANE": "gray",
            "LANES_APP": "cart",
            "LANES_POD_NAME": "cart-7d9f-abcde",
            "LANES_POD_NAMESPACE": "shop",
            "LANES_POD_IP": "10.1.2.3",
        }
    )
    assert config.port == 15401 and config.app_port == 8080
    assert config.ready_path == "/healthz" and config.ready_scheme == "https"
    assert config.warmup_window == 120 and config.curve.k == 2 and config.curve.min_fraction == 0.05
    assert config.warmup_requests == (WarmupRequest("GET", "/api/items", 50, 4),)
    assert config.drain == 12.5 and len(config.notify) == 2
    assert config.identity.pod == "cart-7d9f-abcde" and config.identity.lane == "gray"



def test_port_argument_overrides_env() -> None:
    assert agent_config(port="16000", environ={"LANES_AGENT_PORT": "15401"}).port == 16000


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LANES_DRAIN", "-5", "LANES_DRAIN='-5': want plain seconds"),
        ("LANES_DRAIN", "90000", "LANES_DRAIN='90000'"),
        ("LANES_DRAIN", "20s", "LANES_DRAIN='20s'"),
        ("LANES_DRAIN", "nan", "LANES_DRAIN='nan'"),
        ("LANES_DRAIN", "inf", "LANES_DRAIN='inf'"),
        ("LANES_WARMUP", "two minutes", "LANES_WARMUP='two minutes'"),
        ("LANES_WARMUP_REQUESTS_DEADLINE", "0", "more than 0"),
        ("LANES_AGENT_PORT", "70000", "want a port number"),
        ("LANES_APP_PORT", "http", "LANES_APP_PORT='http'"),
        ("LANES_APP_READY_SCHEME", "ftp", "want one of http, https"),
        ("LANES_APP_READY_PATH", "healthz", "want an absolute path"),
        ("LANES_WARMUP_CURVE", "cubic", "LANES_WARMUP_CURVE: bad warm-up curve 'cubic'"),
        ("LANES_WARMUP_REQUESTS", "GET", "LANES_WARMUP_REQUESTS: bad warm-up request 'GET'"),
        ("LANES_OFFLINE_NOTIFY", "gw:8080", "LANES_OFFLINE_NOTIFY: bad URL 'gw:8080'"),
        ("LANES_REGISTRIES", "nacos!", "LANES_REGISTRIES"),
    ],
)
def test_bad_agent_settings_name_the_setting_and_value(name: str, value: str, expected: str) -> None:
    environ = {"LANES_APP_PORT": "8080", name: value}
    with pytest.raises(ConfigError) as error:
        agent_config(environ=environ)
    assert expected in str(error.value)


def test_warmup_requests_need_an_app_port() -> None:
    with pytest.raises(ConfigError, match="LANES_APP_PORT is not"):
        agent_config(environ={"LANES_WARMUP_REQUESTS": "/x"})


def test_blank_values_mean_unset() -> None:
    config = agent_config(environ={"LANES_DRAIN": " ", "LANES_APP_PORT": "", "LANES_WARMUP_CURVE": ""})
    assert config.drain == 10.0 and config.app_port is None and config.curve_spec == "linear"


def test_prewarm_arguments_override_env(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used here")
    environ = {
        "LANES_PREWARM_TARGETS": "tcp://env:1",
        "LANES_PREWARM_POLICY": "require",
        "LANES_PREWARM_DEADLINE": "30",
        "LANES_PREWARM_TIMEOUT": "2",
        "LANES_PREWARM_CA_FILE": str(ca),
    }
    from_env = prewarm_config(environ=environ)
    assert [t.raw for t in from_env.targets] == ["tcp://env:1"]
    assert (from_env.policy, from_env.deadline, from_env.timeout, from_env.ca_file) == ("require", 30, 2, str(ca))
    from_args = prewarm_config(
        ["tcp://arg:1", "dns://a,dns://b"], policy="warn", deadline="5", timeout="9", environ=environ
    )
    assert [t.raw for t in from_args.targets] == ["tcp://arg:1", "dns://a", "dns://b"]
    assert (from_args.policy, from_args.deadline) == ("warn", 5)
    assert from_args.timeout == 5  # never longer than the deadline


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"deadline": "0"}, "--deadline='0'"),
        ({"deadline": "-1"}, "--deadline='-1'"),
        ({"timeout": "1e9"}, "--timeout='1e9'"),
        ({"policy": "strict"}, "want one of warn, require"),
        ({"ca_file": "/nonexistent/ca.pem"}, "not a readable file"),
    ],
)
def test_bad_prewarm_settings(kwargs: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        prewarm_config(["tcp://db:1"], environ={}, **kwargs)  # type: ignore[arg-type]
    assert expected in str(error.value)


def test_prewarm_needs_targets() -> None:
    with pytest.raises(ConfigError, match="no prewarm targets"):
        prewarm_config([], environ={"LANES_PREWARM_TARGETS": " "})


def test_agent_exits_2_on_bad_env_before_listening() -> None:
    result = run_helper(["agent"], {"LANES_DRAIN": "-1", "LANES_AGENT_PORT": "1"}, timeout=20)
    assert result.returncode == 2
    assert "LANES_DRAIN='-1': want plain seconds" in result.stderr
    assert result.stdout == ""


def test_agent_exits_2_on_unknown_registry() -> None:
    result = run_helper(["agent"], {"LANES_REGISTRIES": "kubernetes,consul"}, timeout=20)
    assert result.returncode == 2
    assert "unknown registry 'consul'" in result.stderr


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["agent", "--bogus"], ["agent", "--port"], ["prewarm", "--x"]])
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "usage: lanes-helper" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], "prewarm"),
        (["prewarm", "--help"], "LANES_PREWARM_TARGETS"),
        (["agent", "--help"], "/prestop"),
        (["--version"], "lanes-helper "),
    ],
)
def test_help_and_version(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code in (0, None)
    assert expected in capsys.readouterr().out


def test_the_agent_looks_for_the_app_like_the_kubelet() -> None:
    plain = agent_config(environ={})
    assert plain.app_hosts == ("127.0.0.1", "::1") and plain.probe_host is None
    pod = agent_config(environ={"LANES_POD_IP": "10.1.2.3", "LANES_POD_IPS": "10.1.2.3,fd00::3"})
    assert pod.app_hosts == ("127.0.0.1", "::1", "10.1.2.3", "fd00::3") and pod.probe_host == "10.1.2.3"
    only_ip = agent_config(environ={"LANES_POD_IP": "10.1.2.3"})  # an older webhook without LANES_POD_IPS
    assert only_ip.app_hosts == ("127.0.0.1", "::1", "10.1.2.3")
    probe_host = agent_config(environ={"LANES_APP_READY_HOST": "[fd00::9]", "LANES_POD_IPS": "10.1.2.3"})
    assert probe_host.app_hosts == ("fd00::9",) and probe_host.probe_host == "fd00::9"
    debug = agent_config(environ={"LANES_APP_HOST": "127.0.0.5", "LANES_APP_READY_HOST": "10.0.0.1"})
    assert debug.app_hosts == ("127.0.0.5",)
    headers = agent_config(environ={"LANES_APP_READY_HEADERS": '[{"name": "Cookie", "value": "a=b"}, {"name": "X"}]'})
    assert headers.ready_headers == (("Cookie", "a=b"), ("X", ""))


def test_pod_restart_policy_decides_whether_prewarm_retries_in_process() -> None:
    base = {"LANES_PREWARM_TARGETS": "tcp://db:5432"}
    assert prewarm_config(environ=base).restarts is True
    assert prewarm_config(environ={**base, "LANES_POD_RESTART_POLICY": "OnFailure"}).restarts is True
    assert prewarm_config(environ={**base, "LANES_POD_RESTART_POLICY": "Never"}).restarts is False
