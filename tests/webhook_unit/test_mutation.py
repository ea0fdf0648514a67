"""The pure mutation: every injected item, every skip, idempotency, and what is never touched."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.webhook_unit.factories import config, container, env_of, frozen, init_named, pod
from webhook.contract import names
from webhook.contract.messages import MAX_MESSAGE
from webhook.injection.mutation import STATUS_VERSION, mutate, read_status

APP_ENV = [
    names.ENV_LANE,
    names.ENV_APP,
    names.ENV_TAG_HEADER,
    names.ENV_POD_NAME,
    names.ENV_POD_NAMESPACE,
    names.ENV_POD_IP,
]


def injected(subject: dict[str, Any], **values: Any) -> tuple[dict[str, Any], list[str]]:
    result = mutate(subject, config(**values))
    assert result.skipped is None
    return result.pod, result.warnings


# --- labels and status ----------------------------------------------------------------------------------------


def test_labels_lane_and_app() -> None:
    out, _ = injected(pod(labels={"team": "x"}), lane="gray", app="checkout")
    assert out["metadata"]["labels"] == {"team": "x", "lanes.io/lane": "gray", "lanes.io/app": "checkout"}


def test_labels_created_when_the_pod_has_none() -> None:
    out, _ = injected(pod())
    assert out["metadata"]["labels"]["lanes.io/lane"] == "base"


def test_user_set_lane_label_is_replaced_with_a_warning() -> None:
    out, warnings = injected(pod(labels={"lanes.io/lane": "wrong"}), lane="gray")
    assert out["metadata"]["labels"]["lanes.io/lane"] == "gray"
    assert any("lanes.io/lane" in w and "'wrong'" in w for w in warnings)


def test_status_annotation_records_config_and_what_was_injected() -> None:
    cfg = config(lane="gray", prewarm=("tcp://db:5432",))
    out = mutate(pod(annotations={"keep": "me"}), cfg).pod
    assert out["metadata"]["annotations"]["keep"] == "me"
    status = json.loads(out["metadata"]["annotations"][names.ANN_STATUS])
    assert status["version"] == STATUS_VERSION
    assert status["hash"] == cfg.hash
    assert status["config"] == cfg.as_json
    assert status["config"]["lane"] == "gray"
    record = status["injected"]
    assert record["labels"] == {"lanes.io/lane": "gray", "lanes.io/app": "web"}
    assert record["initContainers"] == ["lanes-prewarm", "lanes-agent"]
    assert record["containers"]["app"]["env"] == APP_ENV
    assert record["containers"]["app"]["preStop"] == "httpGet"
    assert read_status(out) == status


# --- env ---------------------------------------------------------------------------------------------------------


def test_env_on_every_app_container_not_on_user_init_containers() -> None:
    subject = pod(container("a"), container("b", port=None), initContainers=[container("init", port=None)])
    out, _ = injected(subject, lane="gray", app="shop", tag_header="x-env")
    for c in out["spec"]["containers"]:
        env = env_of(c)
        assert env[names.ENV_LANE]["value"] == "gray"
        assert env[names.ENV_APP]["value"] == "shop"
        assert env[names.ENV_TAG_HEADER]["value"] == "x-env"
        assert env[names.ENV_POD_NAME]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env[names.ENV_POD_NAMESPACE]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
        assert env[names.ENV_POD_IP]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        assert env[names.ENV_OTEL_RESOURCE_ATTRIBUTES]["value"] == "lanes.lane=gray"
    user_init = init_named(out, "init")
    assert user_init is not None and "env" not in user_init


def test_lanes_vars_come_first_so_user_vars_can_reference_them() -> None:
    out, _ = injected(pod(container(env=[{"name": "GREETING", "value": "lane $(LANES_LANE)"}])))
    order = [e["name"] for e in out["spec"]["containers"][0]["env"]]
    assert order[: len(APP_ENV)] == APP_ENV
    assert order.index("GREETING") > order.index(names.ENV_LANE)


def test_user_set_variable_is_never_overridden_and_is_reported() -> None:
    mine = {"name": names.ENV_LANE, "value": "my-own"}
    out, warnings = injected(pod(container(env=[mine])), lane="gray")
    env = out["spec"]["containers"][0]["env"]
    assert [e for e in env if e["name"] == names.ENV_LANE] == [mine]
    assert any(names.ENV_LANE in w and "kept" in w for w in warnings)


def test_otel_plain_value_gets_the_lane_merged() -> None:
    otel = {"name": names.ENV_OTEL_RESOURCE_ATTRIBUTES, "value": "service.name=web,deployment.environment=prod"}
    out, warnings = injected(pod(container(env=[otel])), lane="gray")
    value = env_of(out["spec"]["containers"][0])[names.ENV_OTEL_RESOURCE_ATTRIBUTES]["value"]
    assert value.split(",") == ["service.name=web", "deployment.environment=prod", "lanes.lane=gray"]
    assert warnings == []


def test_otel_empty_value_becomes_the_lane() -> None:
    otel = {"name": names.ENV_OTEL_RESOURCE_ATTRIBUTES, "value": ""}
    out, _ = injected(pod(container(env=[otel])), lane="gray")
    assert env_of(out["spec"]["containers"][0])[names.ENV_OTEL_RESOURCE_ATTRIBUTES]["value"] == "lanes.lane=gray"


def test_otel_from_value_from_is_left_alone_with_a_warning() -> None:
    otel = {"name": names.ENV_OTEL_RESOURCE_ATTRIBUTES, "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}
    out, warnings = injected(pod(container(env=[otel])))
    assert env_of(out["spec"]["containers"][0])[names.ENV_OTEL_RESOURCE_ATTRIBUTES] == otel
    assert any("valueFrom" in w and names.ENV_OTEL_RESOURCE_ATTRIBUTES in w for w in warnings)


def test_otel_user_lane_attribute_is_kept() -> None:
    otel = {"name": names.ENV_OTEL_RESOURCE_ATTRIBUTES, "value": "lanes.lane=custom"}
    out, warnings = injected(pod(container(env=[otel])), lane="gray")
    assert env_of(out["spec"]["containers"][0])[names.ENV_OTEL_RESOURCE_ATTRIBUTES]["value"] == "lanes.lane=custom"
    assert any("lanes.lane" in w for w in warnings)


def test_env_from_container_does_not_get_otel_shadowed() -> None:
    subject = pod(container(envFrom=[{"configMapRef": {"name": "otel"}}]))
    out, warnings = injected(subject)
    env = env_of(out["spec"]["containers"][0])
    assert names.ENV_OTEL_RESOURCE_ATTRIBUTES not in env
    assert names.ENV_LANE in env
    assert any("envFrom" in w for w in warnings)


# --- init containers ---------------------------------------------------------------------------------------------


def test_no_prewarm_container_without_targets() -> None:
    out, _ = injected(pod())
    assert init_named(out, names.CONTAINER_PREWARM) is None


def test_prewarm_container_env_contract() -> None:
    out, _ = injected(
        pod(), prewarm=("tcp://db:5432", "dns://auth"), prewarm_policy="require", prewarm_deadline=90.0,
        prewarm_timeout=2.5,
    )
    prewarm = init_named(out, names.CONTAINER_PREWARM)
    assert prewarm is not None
    assert prewarm["args"] == ["prewarm"]
    assert "restartPolicy" not in prewarm  # a regular init container: it must finish before the app starts
    env = {e["name"]: e["value"] for e in prewarm["env"]}
    assert env == {
        names.ENV_PREWARM_TARGETS: "tcp://db:5432,dns://auth",
        names.ENV_PREWARM_POLICY: "require",
        names.ENV_PREWARM_DEADLINE: "90",
        names.ENV_PREWARM_TIMEOUT: "2.5",
    }


def test_order_user_init_containers_then_prewarm_then_agent() -> None:
    user = [container("migrate", port=None), container("istio-proxy", port=None, restartPolicy="Always")]
    out, _ = injected(pod(initContainers=user), prewarm=("tcp://db:5432",))
    order = [c["name"] for c in out["spec"]["initContainers"]]
    assert order == ["migrate", "istio-proxy", names.CONTAINER_PREWARM, names.CONTAINER_AGENT]
    assert out["spec"]["initContainers"][:2] == user


def test_agent_is_a_native_sidecar_with_probes_and_named_port() -> None:
    out, _ = injected(pod(), agent_port=15400)
    agent = init_named(out, names.CONTAINER_AGENT)
    assert agent is not None
    assert agent["restartPolicy"] == "Always"
    assert agent["args"] == ["agent"]
    assert agent["ports"] == [{"name": "lanes-agent", "containerPort": 15400, "protocol": "TCP"}]
    assert agent["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert agent["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert agent["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        assert agent[probe]["httpGet"]["port"] == "lanes-agent"  # resolved against the agent's own ports


def test_agent_env_contract() -> None:
    out, _ = injected(
        pod(), lane="gray", app="web", agent_port=16000, app_port=8080, warmup=120.0, warmup_curve="k=2",
        warmup_requests="GET /api x5", drain=12.5, offline_notify=("http://r/a", "http://r/b"),
    )
    agent = init_named(out, names.CONTAINER_AGENT)
    assert agent is not None
    env = env_of(agent)
    plain = {k: v["value"] for k, v in env.items() if "value" in v}
    assert plain == {
        names.ENV_AGENT_PORT: "16000",
        names.ENV_APP_PORT: "8080",
        names.ENV_WARMUP: "120",
        names.ENV_WARMUP_CURVE: "k=2",
        names.ENV_WARMUP_REQUESTS: "GET /api x5",
        names.ENV_DRAIN: "12.5",
        names.ENV_OFFLINE_NOTIFY: "http://r/a,http://r/b",
        names.ENV_LANE: "gray",
        names.ENV_APP: "web",
    }
    assert {names.ENV_POD_NAME, names.ENV_POD_NAMESPACE, names.ENV_POD_IP} <= set(env)


def test_agent_env_omits_unset_optional_values() -> None:
    out, _ = injected(pod(container(port=None)), app_port=None)
    env = env_of(init_named(out, names.CONTAINER_AGENT) or {})
    for optional in (names.ENV_APP_PORT, names.ENV_WARMUP_REQUESTS, names.ENV_OFFLINE_NOTIFY,
                     names.ENV_APP_READY_PATH, names.ENV_APP_READY_SCHEME):
        assert optional not in env


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"httpGet": {"path": "/healthz/ready", "port": 8080}}, ("/healthz/ready", "HTTP")),
        ({"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTPS"}}, ("/ready", "HTTPS")),
        ({"httpGet": {"port": "8080"}}, ("/", "HTTP")),
        ({"httpGet": {"path": "/admin", "port": 9090}}, None),  # probes another port: keep the TCP wait
        ({"tcpSocket": {"port": 8080}}, None),
        ({"exec": {"command": ["true"]}}, None),
    ],
)
def test_app_readiness_probe_is_handed_to_the_agent(probe: dict[str, Any], expected: tuple[str, str] | None) -> None:
    out, _ = injected(pod(container(readinessProbe=probe)), app_port=8080)
    env = env_of(init_named(out, names.CONTAINER_AGENT) or {})
    if expected is None:
        assert names.ENV_APP_READY_PATH not in env
    else:
        assert env[names.ENV_APP_READY_PATH]["value"] == expected[0]
        assert env[names.ENV_APP_READY_SCHEME]["value"] == expected[1]
    assert out["spec"]["containers"][0]["readinessProbe"] == probe  # the app keeps its own probe


def test_readiness_probe_comes_from_the_container_serving_the_app_port() -> None:
    sidecar = container("proxy", port=9000, readinessProbe={"httpGet": {"path": "/proxy", "port": 9000}})
    app = container("app", port=8080, readinessProbe={"httpGet": {"path": "/app", "port": 8080}})
    out, _ = injected(pod(sidecar, app), app_port=8080)
    env = env_of(init_named(out, names.CONTAINER_AGENT) or {})
    assert env[names.ENV_APP_READY_PATH]["value"] == "/app"


def test_minimal_mode_has_no_agent() -> None:
    out, _ = injected(pod(), agent=False)
    assert init_named(out, names.CONTAINER_AGENT) is None
    assert "initContainers" not in out["spec"]


# --- preStop -------------------------------------------------------------------------------------------------------


def test_pre_stop_calls_the_agent_by_port_number_on_every_app_container() -> None:
    out, _ = injected(pod(container("a"), container("b", port=None)), agent_port=15400)
    for c in out["spec"]["containers"]:
        hook = c["lifecycle"]["preStop"]
        assert hook == {"httpGet": {"path": "/prestop", "port": 15400, "scheme": "HTTP"}}
        assert isinstance(hook["httpGet"]["port"], int)  # a name would resolve against the app container


def test_minimal_mode_sleeps_the_drain_rounded_up() -> None:
    out, _ = injected(pod(), agent=False, drain=12.2)
    assert out["spec"]["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 13}}


def test_minimal_mode_without_drain_has_no_pre_stop() -> None:
    out, _ = injected(pod(), agent=False, drain=0.0)
    assert "lifecycle" not in out["spec"]["containers"][0]


def test_user_pre_stop_is_kept_and_reported() -> None:
    lifecycle = {"preStop": {"exec": {"command": ["/bin/drain"]}}, "postStart": {"exec": {"command": ["x"]}}}
    out, warnings = injected(pod(container(lifecycle=lifecycle)))
    assert out["spec"]["containers"][0]["lifecycle"] == lifecycle
    assert any("preStop" in w for w in warnings)


def test_other_lifecycle_hooks_survive() -> None:
    post = {"exec": {"command": ["warm"]}}
    out, _ = injected(pod(container(lifecycle={"postStart": post})))
    assert out["spec"]["containers"][0]["lifecycle"]["postStart"] == post
    assert "preStop" in out["spec"]["containers"][0]["lifecycle"]


# --- pod-level ---------------------------------------------------------------------------------------------------


def test_readiness_gate_added_once() -> None:
    out, _ = injected(pod(readinessGates=[{"conditionType": "other"}]))
    assert out["spec"]["readinessGates"] == [{"conditionType": "other"}, {"conditionType": "lanes.io/registered"}]
    already = pod(readinessGates=[{"conditionType": "lanes.io/registered"}])
    out, _ = injected(already)
    assert out["spec"]["readinessGates"] == [{"conditionType": "lanes.io/registered"}]


def test_grace_period_raised_when_drain_and_shutdown_do_not_fit() -> None:
    out, warnings = injected(pod(), drain=30.0, shutdown_budget=15.0)
    assert out["spec"]["terminationGracePeriodSeconds"] == 45
    assert any("terminationGracePeriodSeconds" in w and "30" in w and "45" in w for w in warnings)


def test_grace_period_untouched_when_it_fits_and_never_lowered() -> None:
    out, warnings = injected(pod(), drain=10.0, shutdown_budget=15.0)  # 25 <= default 30
    assert "terminationGracePeriodSeconds" not in out["spec"]
    assert not any("terminationGracePeriodSeconds" in w for w in warnings)
    out, _ = injected(pod(terminationGracePeriodSeconds=300), drain=30.0)
    assert out["spec"]["terminationGracePeriodSeconds"] == 300


def test_grace_period_rounds_up_fractions() -> None:
    out, _ = injected(pod(terminationGracePeriodSeconds=10), drain=10.5, shutdown_budget=5.0)
    assert out["spec"]["terminationGracePeriodSeconds"] == math.ceil(15.5)


# --- Pod Security -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [names.CONTAINER_PREWARM, names.CONTAINER_AGENT])
def test_injected_containers_meet_pod_security_restricted(name: str) -> None:
    out, _ = injected(pod(), prewarm=("tcp://db:5432",))
    injected_container = init_named(out, name)
    assert injected_container is not None
    sc = injected_container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert "runAsUser" not in sc  # the image's numeric USER, or the UID the platform assigns (test_platforms.py)
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc.get("privileged") is not True
    resources = injected_container["resources"]
    assert resources["requests"] == {"cpu": "10m", "memory": "32Mi"}
    assert resources["limits"] == {"memory": "64Mi"}


def test_injected_containers_do_not_share_objects() -> None:
    out, _ = injected(pod(), prewarm=("tcp://db:5432",))
    prewarm, agent = out["spec"]["initContainers"]
    assert prewarm["securityContext"] is not agent["securityContext"]
    assert prewarm["resources"] is not agent["resources"]


# --- skips ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        (pod(hostNetwork=True), "hostNetwork"),
        (pod(labels={"lanes.io/inject": "false"}), "opted-out"),
        (pod(labels={"lanes.io/inject": "False"}), "opted-out"),
        (pod(os={"name": "windows"}), "windows"),
        ({"metadata": {}, "spec": {"containers": []}}, "invalid-pod"),
        ({"metadata": {}}, "invalid-pod"),
        ({"metadata": {}, "spec": {"containers": [{"image": "no-name"}]}}, "invalid-pod"),
        ({"metadata": "x", "spec": {"containers": [{"name": "a"}]}}, "invalid-pod"),
    ],
)
def test_skips_leave_the_pod_untouched(subject: dict[str, Any], reason: str) -> None:
    before = frozen(subject)
    result = mutate(subject, config())
    assert result.skipped == reason
    assert result.pod == before
    assert result.warnings == []


def test_inject_label_true_is_injected() -> None:
    assert mutate(pod(labels={"lanes.io/inject": "true"}), config()).skipped is None


# --- idempotency and purity ---------------------------------------------------------------------------------------


def test_input_is_never_modified() -> None:
    subject = pod(
        container(env=[{"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "a=b"}], lifecycle={"postStart": {}}),
        initContainers=[container("init", port=None)],
        readinessGates=[{"conditionType": "x"}],
        labels={"a": "b"},
        annotations={"c": "d"},
    )
    before = frozen(subject)
    mutate(subject, config(prewarm=("tcp://db:1",), drain=60.0))
    assert subject == before


def test_applying_to_its_own_output_changes_nothing() -> None:
    cfg = config(prewarm=("tcp://db:5432",), drain=40.0)
    once = mutate(pod(container("a"), container("b")), cfg)
    twice = mutate(once.pod, cfg)
    assert twice.skipped == "already-injected"
    assert twice.pod == once.pod
    assert twice.warnings == []


def test_new_container_after_injection_is_injected_too() -> None:
    """Another webhook appended a container after ours ran (reinvocation): it gets the env and preStop."""
    cfg = config()
    once = mutate(pod(), cfg).pod
    once["spec"]["containers"].append(container("late", port=None))
    again = mutate(once, cfg)
    assert again.skipped is None
    late = again.pod["spec"]["containers"][1]
    assert names.ENV_LANE in env_of(late)
    assert late["lifecycle"]["preStop"]["httpGet"]["path"] == "/prestop"
    assert [c["name"] for c in again.pod["spec"]["initContainers"]] == [names.CONTAINER_AGENT]
    assert env_of(again.pod["spec"]["containers"][0]) == env_of(once["spec"]["containers"][0])
    assert again.warnings == []  # what Lanes injected before is recognised as its own


def test_reinjection_with_a_new_config_updates_what_lanes_injected() -> None:
    subject = pod(container(env=[{"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "service.name=web"}]))
    first = mutate(subject, config(lane="gray", prewarm=("tcp://db:1",))).pod
    second = mutate(first, config(lane="blue", agent=False, drain=5.0))
    assert second.skipped is None
    out = second.pod
    app = out["spec"]["containers"][0]
    assert env_of(app)[names.ENV_LANE]["value"] == "blue"
    assert env_of(app)[names.ENV_OTEL_RESOURCE_ATTRIBUTES]["value"] == "service.name=web,lanes.lane=blue"
    assert app["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert "initContainers" not in out["spec"] or out["spec"]["initContainers"] == []
    assert out["metadata"]["labels"]["lanes.io/lane"] == "blue"
    assert not any("kept" in w or "preStop" in w for w in second.warnings)


def test_round_trip_through_another_config_returns_the_same_pod() -> None:
    subject = pod(
        container("a", env=[{"name": "X", "value": "1"}, {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "k=v"}]),
        container("b", port=None),
        initContainers=[container("init", port=None)],
    )
    original = config(lane="gray", prewarm=("tcp://db:1",))
    other = config(lane="blue", agent=False, prewarm=(), app="other")
    direct = mutate(subject, original).pod
    detour = mutate(mutate(direct, other).pod, original).pod
    assert detour == direct


def test_warnings_fit_the_admission_budget() -> None:
    long_name = "c" * 63
    subject = pod(
        container(
            long_name,
            env=[{"name": n, "value": "x"} for n in APP_ENV]
            + [{"name": "OTEL_RESOURCE_ATTRIBUTES", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
            lifecycle={"preStop": {"exec": {"command": ["x"]}}},
        ),
        labels={"lanes.io/lane": "x" * 63},
    )
    _, warnings = injected(subject, drain=3000.0, shutdown_budget=3000.0, lane="l" * 63)
    assert len(warnings) >= 5
    assert all(len(w) <= MAX_MESSAGE and w.isprintable() for w in warnings)
