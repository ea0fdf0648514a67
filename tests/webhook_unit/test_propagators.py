"""``OTEL_PROPAGATORS`` on app containers (issue #13.4): lanes travel in W3C baggage, so the webhook makes sure
the OpenTelemetry SDK propagates it, without ever overriding what the app chose."""

from __future__ import annotations

from typing import Any

import pytest

from tests.webhook_unit.factories import config, container, env_of, pod
from webhook.contract import names
from webhook.injection.mutation import mutate

PROPAGATORS = "OTEL_PROPAGATORS"


def injected(subject: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    result = mutate(subject, config())
    assert result.skipped is None
    return result.pod, result.warnings


def test_added_when_the_app_sets_none() -> None:
    out, warnings = injected(pod(container("a"), container("b", port=None)))
    for c in out["spec"]["containers"]:
        assert env_of(c)[PROPAGATORS] == {"name": PROPAGATORS, "value": "tracecontext,baggage"}
    assert not any(PROPAGATORS in w for w in warnings)


@pytest.mark.parametrize("value", ["tracecontext,baggage,b3", "baggage", " Baggage , xray", "", "  "])
def test_user_value_with_baggage_is_kept_silently(value: str) -> None:
    """Empty means unset to the SDK (OpenTelemetry's environment spec): its default, which has baggage."""
    mine = {"name": PROPAGATORS, "value": value}
    out, warnings = injected(pod(container(env=[mine])))
    assert env_of(out["spec"]["containers"][0])[PROPAGATORS] == mine
    assert not any(PROPAGATORS in w for w in warnings), warnings


@pytest.mark.parametrize("value", ["b3", "tracecontext", "none", "tracecontext,b3multi"])
def test_user_value_without_baggage_is_kept_with_a_warning(value: str) -> None:
    mine = {"name": PROPAGATORS, "value": value}
    out, warnings = injected(pod(container(env=[mine])))
    assert env_of(out["spec"]["containers"][0])[PROPAGATORS] == mine
    assert any(PROPAGATORS in w and "baggage" in w for w in warnings), warnings


def test_value_from_is_kept_without_a_guess() -> None:
    mine = {"name": PROPAGATORS, "valueFrom": {"configMapKeyRef": {"name": "otel", "key": "propagators"}}}
    out, warnings = injected(pod(container(env=[mine])))
    assert env_of(out["spec"]["containers"][0])[PROPAGATORS] == mine
    assert not any(PROPAGATORS in w for w in warnings)


def test_env_from_is_not_shadowed() -> None:
    """An explicit env entry would override a ConfigMap's OTEL_PROPAGATORS; the SDK default already includes
    baggage, so nothing is added."""
    out, _ = injected(pod(container(envFrom=[{"configMapRef": {"name": "otel"}}])))
    assert PROPAGATORS not in env_of(out["spec"]["containers"][0])


def test_reinjection_keeps_it_as_lanes_own() -> None:
    first, _ = injected(pod())
    changed = mutate(first, config(lane="gray"))
    assert changed.skipped is None
    env = changed.pod["spec"]["containers"][0]["env"]
    assert [e for e in env if e["name"] == PROPAGATORS] == [{"name": PROPAGATORS, "value": "tracecontext,baggage"}]
    assert not any(PROPAGATORS in w for w in changed.warnings), changed.warnings
    assert mutate(first, config()).skipped == "already-injected"
    assert names.ENV_LANE in {e["name"] for e in env}
