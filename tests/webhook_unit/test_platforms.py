"""Pods a real node treats differently (issue #12.4, webhook side): UDP/SCTP ports, Windows pods selected by node
labels, and the injected containers' user on platforms that assign UIDs (OpenShift restricted-v2)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.webhook_unit.factories import config, container, env_of, init_named, pod
from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults, DefaultsError, defaults_from_mapping
from webhook.injection.admit import admit_pod
from webhook.injection.mutation import mutate, skip_reason
from webhook.injection.resolve import default_app_port, resolve

DEFAULTS = ClusterDefaults()


# --- (a) the default app port is a TCP port --------------------------------------------------------------------


def test_udp_and_sctp_ports_are_not_the_app_port() -> None:
    web = container(ports=[{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 3868, "protocol": "SCTP"},
                           {"containerPort": 8080, "protocol": "TCP"}])
    assert default_app_port(pod(web)) == 8080


def test_only_udp_ports_give_no_app_port_and_a_warning() -> None:
    dns = container("dns", ports=[{"name": "dns", "containerPort": 53, "protocol": "UDP"}])
    resolution = resolve(pod(dns), DEFAULTS)
    assert resolution.config.app_port is None
    assert any("UDP" in w and names.ANN_PORT in w for w in resolution.warnings), resolution.warnings
    out = mutate(pod(dns), resolution.config).pod
    agent = init_named(out, names.CONTAINER_AGENT)
    assert agent is not None and names.ENV_APP_PORT not in env_of(agent)


def test_named_lanes_port_of_a_udp_port_is_refused() -> None:
    dns = container("dns", ports=[{"name": "dns", "containerPort": 53, "protocol": "UDP"}])
    resolution = resolve(pod(dns, annotations={names.ANN_PORT: "dns"}), DEFAULTS)
    assert resolution.config.app_port is None
    assert any(names.ANN_PORT in w and "UDP" in w for w in resolution.warnings), resolution.warnings


# --- (b) Windows pods -------------------------------------------------------------------------------------------

WINDOWS_TERM = {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]}]}
LINUX_TERM = {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize(
    "spec",
    [
        {"nodeSelector": {"kubernetes.io/os": "windows"}},
        {"nodeSelector": {"beta.kubernetes.io/os": "windows"}},
        {"affinity": affinity(WINDOWS_TERM)},
        {"affinity": affinity(WINDOWS_TERM, {"matchExpressions": [
            {"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]},
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]})},
    ],
    ids=["nodeSelector", "beta-nodeSelector", "affinity", "affinity-two-terms"],
)
def test_windows_pods_selected_by_node_labels_are_skipped(spec: dict[str, Any]) -> None:
    subject = pod(**spec)
    assert skip_reason(subject) == "windows"
    assert admit_pod(subject, "shop", DEFAULTS, None).skip_reason == "windows"


@pytest.mark.parametrize(
    "spec",
    [
        {"nodeSelector": {"kubernetes.io/os": "linux"}},
        {"affinity": affinity(WINDOWS_TERM, LINUX_TERM)},  # either OS may be chosen: the Linux image may run
        {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": WINDOWS_TERM}]}}},
        {"affinity": affinity({"matchExpressions": [
            {"key": "kubernetes.io/os", "operator": "NotIn", "values": ["windows"]}]})},
    ],
    ids=["linux", "either", "preferred-only", "not-windows"],
)
def test_pods_that_may_run_on_linux_are_injected(spec: dict[str, Any]) -> None:
    assert skip_reason(pod(**spec)) is None


# --- (d) the injected containers' user --------------------------------------------------------------------------


def _security(subject: dict[str, Any], defaults: ClusterDefaults = DEFAULTS) -> dict[str, Any]:
    cfg = resolve(subject, defaults).config
    agent = init_named(mutate(subject, cfg).pod, names.CONTAINER_AGENT)
    assert agent is not None
    return dict(agent["securityContext"])


def test_default_leaves_the_uid_to_the_image_and_the_platform() -> None:
    """OpenShift's restricted-v2 assigns a UID from the namespace's range and rejects any other; the helper image's
    numeric ``USER 65532:65532`` is what runs elsewhere, and ``runAsNonRoot`` keeps Pod Security restricted."""
    sc = _security(pod())
    assert sc["runAsNonRoot"] is True
    assert "runAsUser" not in sc and "runAsGroup" not in sc


def test_run_as_user_setting_pins_the_uid() -> None:
    sc = _security(pod(), defaults_from_mapping({"runAsUser": 1000650000}))
    assert sc["runAsUser"] == 1000650000 and sc["runAsGroup"] == 1000650000


def test_pod_running_as_root_still_gets_a_non_root_helper() -> None:
    """A pod-level ``runAsUser: 0`` would be inherited and fail ``runAsNonRoot``: the helper's own UID is set."""
    sc = _security(pod(securityContext={"runAsUser": 0}))
    assert sc["runAsUser"] == names.NONROOT_UID and sc["runAsGroup"] == names.NONROOT_UID


@pytest.mark.parametrize("bad", [0, -1, "root", 2**31, True])
def test_bad_run_as_user_is_refused_at_start(bad: Any) -> None:
    with pytest.raises(DefaultsError, match=r"runAsUser: '.*': (not a user ID|0 is root|user IDs are 1\.\.)"):
        defaults_from_mapping({"runAsUser": bad})


def test_status_of_pods_not_using_the_setting_is_unchanged() -> None:
    """The uid is recorded in ``lanes.io/status`` only when set: existing pods keep their hash."""
    cfg = config()
    assert "run_as_user" not in cfg.as_json
    assert "run_as_user" in config(run_as_user=1000).as_json


# --- restartPolicy: Never (Jobs, bare pods): the kubelet does not run a failed init container again ---------------


def test_prewarm_is_told_when_the_kubelet_will_not_retry_it() -> None:
    out = mutate(pod(restartPolicy="Never"), config(prewarm=("tcp://db:5432",))).pod
    prewarm = init_named(out, names.CONTAINER_PREWARM)
    assert prewarm is not None
    assert env_of(prewarm)[names.ENV_POD_RESTART_POLICY] == {"name": names.ENV_POD_RESTART_POLICY, "value": "Never"}
    for policy in ("Always", "OnFailure", None):
        subject = pod(restartPolicy=policy) if policy else pod()
        prewarm = init_named(mutate(subject, config(prewarm=("tcp://db:5432",))).pod, names.CONTAINER_PREWARM)
        assert prewarm is not None and names.ENV_POD_RESTART_POLICY not in env_of(prewarm)
