"""``lanes.io/registry`` from annotation to agent: parsed once, bad parts named, secrets only as secretKeyRef."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from helper.registries.nacos_url import RegistryUrlError, parse
from helper.registries.online import MAX_UPDATES, ramp
from helper.warmup import LINEAR, Curve, fraction
from tests.helper.procs import REPO, base_env
from tests.webhook_unit.factories import pod
from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults
from webhook.injection.mutation import mutate
from webhook.injection.resolve import resolve_pod

HELPER = str(REPO / ".venv" / "bin" / "lanes-helper")


def test_the_issue_example_parses() -> None:
    target = parse("nacos://nacos.infra:8848?service=orders&group=DEFAULT_GROUP&namespace=dev&cluster=DEFAULT&mode=register")
    assert (target.host, target.port, target.service, target.group, target.namespace) == (
        "nacos.infra", 8848, "orders", "DEFAULT_GROUP", "dev")  # fmt: skip
    assert (target.cluster, target.mode, target.api, target.context) == ("DEFAULT", "register", "v2", "/nacos")
    assert parse("nacos://nacos").for_app("checkout").service == "checkout"  # service defaults to lanes.io/app
    assert parse("nacos://[fd00::1]:9000/ctx?api=v3&mode=manage&port=20880&weight=5").instance_port == 20880


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("http://nacos:8848", "scheme 'http'"),
        ("nacos://user:pw@nacos:8848", "credentials do not belong in the URL"),
        ("nacos://nacos:99999", "port"),
        ("nacos://nacos?mode=sometimes", "mode 'sometimes'"),
        ("nacos://nacos?api=v1", "api 'v1'"),
        ("nacos://nacos?servce=orders", "parameter 'servce': unknown"),
        ("nacos://nacos?service=a@@b", "service 'a@@b'"),
        ("nacos://nacos?weight=0", "weight '0'"),
        ("nacos://nacos?port=http", "port 'http'"),
        ("nacos://nacos?service=a&service=b", "parameter 'service': given twice"),
        ("nacos://", "host"),
    ],
)
def test_a_bad_part_is_named(value: str, named: str) -> None:
    with pytest.raises(RegistryUrlError, match=named.replace("?", r"\?")):
        parse(value)


def _agent_env(annotations: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    resolved = resolve_pod(pod(annotations=annotations), "shop", ClusterDefaults(), None)
    mutated = mutate(pod(annotations=annotations), resolved.config)
    agent = next(c for c in mutated.pod["spec"]["initContainers"] if c["name"] == names.CONTAINER_AGENT)
    return agent["env"], resolved.warnings + mutated.warnings


def test_the_webhook_passes_the_url_and_the_secret_as_secret_key_refs_only() -> None:
    env, warnings = _agent_env({
        names.ANN_REGISTRY: "nacos://nacos.infra:8848?mode=manage",
        names.ANN_REGISTRY_SECRET: "nacos-credentials",
        names.ANN_REGISTER_DELAY: "5s",
    })  # fmt: skip
    assert warnings == []
    by_name = {item["name"]: item for item in env}
    assert by_name[names.ENV_REGISTRY]["value"] == "nacos://nacos.infra:8848?mode=manage"
    assert by_name[names.ENV_REGISTER_DELAY]["value"] == "5"
    for env_name, key in ((names.ENV_REGISTRY_USERNAME, "username"), (names.ENV_REGISTRY_PASSWORD, "password"),
                          (names.ENV_REGISTRY_ACCESS_TOKEN, "accessToken")):  # fmt: skip
        assert by_name[env_name] == {
            "name": env_name,
            "valueFrom": {"secretKeyRef": {"name": "nacos-credentials", "key": key, "optional": True}},
        }
        assert "value" not in by_name[env_name]


def test_no_registry_no_registry_env() -> None:
    env, _ = _agent_env({})
    assert not [item for item in env if item["name"].startswith("LANES_REGIST")]


def test_a_bad_registry_annotation_warns_naming_the_part_and_injects_none() -> None:
    env, warnings = _agent_env({names.ANN_REGISTRY: "nacos://n?mode=x"})
    [warning] = warnings
    assert warning.startswith("lanes.io/registry: ") and "mode 'x'" in warning and "using none" in warning
    assert names.ENV_REGISTRY not in {item["name"] for item in env}


def _helper(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [HELPER] if (REPO / ".venv" / "bin" / "lanes-helper").exists() else [sys.executable, "-m", "helper"]
    return subprocess.run([*command, "agent"], env=base_env(env), capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LANES_REGISTRY": "nacos://n?mode=x", "LANES_POD_IP": "10.0.0.1", "LANES_APP_PORT": "8080"}, "mode 'x'"),
        ({"LANES_REGISTRY": "nacos://n", "LANES_APP_PORT": "8080"}, "LANES_POD_IP is not set"),
        ({"LANES_REGISTRY": "nacos://n", "LANES_POD_IP": "10.0.0.1"}, "which port to register"),
        ({"LANES_REGISTRY": "nacos://n", "LANES_POD_IP": "10.0.0.1", "LANES_APP_PORT": "1",
          "LANES_REGISTRY_USERNAME": "u"}, "go together"),
    ],
)
def test_the_agent_refuses_an_unusable_registry_with_exit_2(env: dict[str, str], message: str) -> None:
    result = _helper({"LANES_APP": "orders", **env})
    assert result.returncode == 2, result
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("curve", [LINEAR, Curve(k=2), Curve(k=0.5, min_fraction=0.0), Curve(k=3)])
@pytest.mark.parametrize("window", [1.0, 60.0, 3600.0])
def test_the_ramp_is_bounded_monotonic_and_on_the_curve(curve: Curve, window: float) -> None:
    points = ramp(window, curve)
    assert 1 <= len(points) <= MAX_UPDATES
    assert points[-1] == (window, 1.0)
    assert [f for _, f in points] == sorted(f for _, f in points)
    for at, value in points[:-1]:
        assert value == pytest.approx(fraction(at, window, curve), abs=1e-6)
    assert ramp(0.0, curve) == []
