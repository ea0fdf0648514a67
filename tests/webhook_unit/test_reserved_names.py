"""Container names Lanes injects (issue #11.5): a user container with one of them is never dropped or duplicated;
the pod is left alone with a warning that names the conflict, while Lanes' own containers (recorded in
``lanes.io/status``) are still recognised on re-invocation."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.webhook_unit.factories import config, container, pod
from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults
from webhook.injection.admit import admit_pod
from webhook.injection.mutation import mutate, skip_reason

DEFAULTS = ClusterDefaults()
PREWARM = ClusterDefaults(prewarm="tcp://db:5432")


def admitted(subject: dict[str, Any], defaults: ClusterDefaults = DEFAULTS) -> Any:
    return admit_pod(subject, "shop", defaults, None)


@pytest.mark.parametrize("name", sorted(names.INJECTED_CONTAINERS))
def test_app_container_with_a_lanes_name_is_not_injected(name: str) -> None:
    subject = pod(container(name))
    result = admitted(subject)
    assert result.skip_reason == "reserved-name"
    assert result.patch == [] and not result.injected
    assert any(f"'{name}'" in w and "not injected" in w for w in result.warnings), result.warnings
    assert skip_reason(subject) == "reserved-name"
    assert mutate(subject, config()).skipped == "reserved-name"


@pytest.mark.parametrize("name", sorted(names.INJECTED_CONTAINERS))
def test_user_init_container_with_a_lanes_name_is_kept_not_replaced(name: str) -> None:
    mine = {"name": name, "image": "example.com/mine:1", "command": ["./setup"]}
    subject = pod(container(), initContainers=[mine])
    for defaults in (DEFAULTS, PREWARM):
        result = admitted(subject, defaults)
        assert result.skip_reason == "reserved-name", defaults
        assert result.patch == []
        assert any(f"'{name}'" in w and "initContainers" in w for w in result.warnings), result.warnings


def test_lanes_own_containers_are_recognised_on_reinvocation() -> None:
    first = mutate(pod(labels={"app": "web"}), config(prewarm=("tcp://db:5432",))).pod
    assert skip_reason(first) is None
    assert admitted(first, PREWARM).skip_reason == "already-injected"
    # a changed configuration updates Lanes' containers in place: nothing duplicated, nothing of the user's lost
    again = admitted(first, DEFAULTS)
    assert again.injected and again.skip_reason is None
    out = mutate(first, config()).pod
    assert [c["name"] for c in out["spec"]["initContainers"]] == [names.CONTAINER_AGENT]


def test_status_that_does_not_record_the_container_does_not_make_it_ours() -> None:
    first = mutate(pod(), config()).pod  # records lanes-agent only
    with_user_prewarm = copy.deepcopy(first)
    with_user_prewarm["spec"]["initContainers"].insert(0, {"name": names.CONTAINER_PREWARM, "image": "mine"})
    assert skip_reason(with_user_prewarm) == "reserved-name"


def test_duplicate_lanes_container_is_left_to_the_api_server() -> None:
    first = mutate(pod(), config()).pod
    doubled = copy.deepcopy(first)
    doubled["spec"]["initContainers"].append(copy.deepcopy(doubled["spec"]["initContainers"][0]))
    assert skip_reason(doubled) == "reserved-name"


def test_unreadable_status_does_not_claim_containers() -> None:
    subject = pod(container(), initContainers=[{"name": names.CONTAINER_AGENT, "image": "mine"}],
                  annotations={names.ANN_STATUS: json.dumps({"injected": {"initContainers": "lanes-agent"}})})
    assert skip_reason(subject) == "reserved-name"
