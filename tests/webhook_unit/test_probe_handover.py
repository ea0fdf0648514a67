"""The readiness probe handed over to the agent (issue #11.7, shared contract #1): path, scheme, host and
httpHeaders, probe ports given by name, and the pod IPs the agent may reach the app at."""

from __future__ import annotations

import json
from typing import Any

from tests.webhook_unit.factories import config, container, env_of, init_named, pod
from webhook.contract import names
from webhook.injection.mutation import mutate


def agent_env(subject: dict[str, Any], **values: Any) -> dict[str, dict[str, Any]]:
    result = mutate(subject, config(**values))
    assert result.skipped is None
    agent = init_named(result.pod, names.CONTAINER_AGENT)
    assert agent is not None
    return env_of(agent)


def test_probe_headers_and_host_are_handed_over() -> None:
    probe = {"httpGet": {"path": "/_healthz", "port": 8080, "host": "10.1.2.3",
                         "httpHeaders": [{"name": "Cookie", "value": "shop_session-id=x-readiness-probe"},
                                         {"name": "X-Probe", "value": ""}]}}
    env = agent_env(pod(container(readinessProbe=probe)))
    assert env[names.ENV_APP_READY_PATH]["value"] == "/_healthz"
    assert env[names.ENV_APP_READY_HOST]["value"] == "10.1.2.3"
    assert json.loads(env[names.ENV_APP_READY_HEADERS]["value"]) == [
        {"name": "Cookie", "value": "shop_session-id=x-readiness-probe"},
        {"name": "X-Probe", "value": ""},
    ]


def test_no_header_or_host_variables_without_them() -> None:
    env = agent_env(pod(container(readinessProbe={"httpGet": {"path": "/ready", "port": 8080}})))
    assert names.ENV_APP_READY_HOST not in env and names.ENV_APP_READY_HEADERS not in env


def test_malformed_headers_are_dropped_not_passed_on() -> None:
    probe = {"httpGet": {"path": "/r", "port": 8080, "host": "",
                         "httpHeaders": [{"name": "Ok", "value": "1"}, {"name": 5}, "x", {"value": "v"}]}}
    env = agent_env(pod(container(readinessProbe=probe)))
    assert json.loads(env[names.ENV_APP_READY_HEADERS]["value"]) == [{"name": "Ok", "value": "1"}]
    assert names.ENV_APP_READY_HOST not in env


def test_pod_ips_are_always_given_to_the_agent() -> None:
    for subject in (pod(), pod(container(port=None))):
        env = agent_env(subject)
        assert env[names.ENV_POD_IPS] == {
            "name": names.ENV_POD_IPS,
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIPs"}},
        }


def test_probe_port_by_name_is_resolved_and_handed_over() -> None:
    web = container(ports=[{"name": "metrics", "containerPort": 9090}, {"name": "web", "containerPort": 8080}],
                    readinessProbe={"httpGet": {"path": "/ready", "port": "web"}})
    env = agent_env(pod(web), app_port=8080)
    assert env[names.ENV_APP_READY_PATH]["value"] == "/ready"


def test_probe_port_by_name_gives_the_default_app_port_when_no_tcp_port_comes_first() -> None:
    from webhook.injection.resolve import default_app_port

    web = container(ports=[{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                           {"name": "web", "containerPort": 8080}],
                    readinessProbe={"httpGet": {"path": "/ready", "port": "web"}})
    assert default_app_port(pod(web)) == 8080


def test_odd_unicode_digit_port_does_not_raise() -> None:
    probe = {"httpGet": {"path": "/r", "port": "²"}}
    env = agent_env(pod(container(readinessProbe=probe)))
    assert names.ENV_APP_READY_PATH not in env
