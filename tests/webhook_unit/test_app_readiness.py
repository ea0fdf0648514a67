"""The readiness probe Lanes gives an app container that has none (issue #12.4 "readiness is latched").

Without a probe the kubelet counts an app container ready the moment it (re)starts, so after a crash the pod was
Ready before the restarted app listened. The webhook gives that container the agent's ``/ready/app`` by port number
(a named port resolves against the probed container's own ports, and the agent's port is on the agent's
container); a probe the user wrote is never touched.
"""

from __future__ import annotations

import json
from typing import Any

from tests.webhook_unit.factories import config, container, pod
from webhook.contract import names
from webhook.injection.mutation import mutate


def _containers(result_pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result_pod["spec"]["containers"]}


def _status(result_pod: dict[str, Any]) -> dict[str, Any]:
    return json.loads(result_pod["metadata"]["annotations"][names.ANN_STATUS])


def test_an_app_container_without_a_probe_gets_the_agents_app_check_by_port_number() -> None:
    result = mutate(pod(container()), config(agent_port=15020))
    probe = _containers(result.pod)["app"]["readinessProbe"]
    assert probe["httpGet"] == {"path": "/ready/app", "port": 15020, "scheme": "HTTP"}
    assert isinstance(probe["httpGet"]["port"], int)
    assert probe["periodSeconds"] == 1 and probe["successThreshold"] == 1
    assert probe["timeoutSeconds"] >= 1 and probe["failureThreshold"] >= 1
    assert _status(result.pod)["injected"]["containers"]["app"]["readinessProbe"] == "agent"


def test_a_probe_of_the_users_own_is_kept_as_written() -> None:
    for own in (
        {"httpGet": {"path": "/healthz", "port": 8080}},
        {"exec": {"command": ["true"]}},
        {"tcpSocket": {"port": 8080}, "periodSeconds": 7},
    ):
        result = mutate(pod(container(readinessProbe=own)), config())
        assert _containers(result.pod)["app"]["readinessProbe"] == own
        assert "readinessProbe" not in _status(result.pod)["injected"]["containers"]["app"]


def test_only_the_app_container_gets_it_not_its_neighbours() -> None:
    app = container("web", port=9000)
    logger = container("logger", port=None)
    result = mutate(pod(logger, app), config(app_port=9000))
    containers = _containers(result.pod)
    assert containers["web"]["readinessProbe"]["httpGet"]["path"] == "/ready/app"
    assert "readinessProbe" not in containers["logger"]


def test_no_probe_in_minimal_mode_or_without_an_app_port() -> None:
    minimal = mutate(pod(container()), config(agent=False))
    assert "readinessProbe" not in _containers(minimal.pod)["app"]
    portless = mutate(pod(container(port=None)), config(app_port=None))
    assert "readinessProbe" not in _containers(portless.pod)["app"]


def test_a_second_mutation_keeps_it_and_minimal_mode_takes_only_lanes_probe_away() -> None:
    first = mutate(pod(container()), config(drain=20.0))
    again = mutate(first.pod, config(drain=30.0))  # a different configuration: updated in place
    assert _containers(again.pod)["app"]["readinessProbe"] == _containers(first.pod)["app"]["readinessProbe"]
    assert _status(again.pod)["injected"]["containers"]["app"]["readinessProbe"] == "agent"
    minimal = mutate(first.pod, config(agent=False))
    assert "readinessProbe" not in _containers(minimal.pod)["app"]


def test_the_input_pod_is_not_modified() -> None:
    subject = pod(container())
    before = json.dumps(subject, sort_keys=True)
    mutate(subject, config())
    assert json.dumps(subject, sort_keys=True) == before
