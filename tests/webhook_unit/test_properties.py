"""Property tests on random valid pods: admission never raises, the patch reproduces the mutation exactly, the
mutation is idempotent and never modifies its input, warnings always fit."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.webhook_unit.factories import FakeOwners
from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults
from webhook.contract.messages import MAX_WARNING
from webhook.injection.admit import admit_pod
from webhook.injection.mutation import mutate
from webhook.injection.patch import make_ops
from webhook.injection.resolve import resolve_pod

DEFAULTS = ClusterDefaults()
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dns_names = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
env_names = st.one_of(
    st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True),
    st.sampled_from([names.ENV_LANE, names.ENV_APP, names.ENV_POD_IP, names.ENV_OTEL_RESOURCE_ATTRIBUTES]),
)
env_values = st.one_of(
    st.fixed_dictionaries({"value": st.text(max_size=20)}),
    st.fixed_dictionaries({"value": st.from_regex(r"([a-z.]{1,8}=[a-z0-9]{1,5},?){0,3}", fullmatch=True)}),
    st.just({"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
)
ports = st.lists(
    st.fixed_dictionaries(
        {"containerPort": st.integers(1, 65535)}, optional={"name": st.sampled_from(["http", "grpc", "admin"])}
    ),
    max_size=3,
    unique_by=lambda p: p.get("name", p["containerPort"]),
)
probes = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"httpGet": st.fixed_dictionaries(
            {"port": st.one_of(st.integers(1, 65535), st.sampled_from(["http", "grpc", "8080"]))},
            optional={
                "path": st.sampled_from(["/", "/ready", "/health/z"]),
                "scheme": st.sampled_from(["HTTP", "HTTPS"]),
            },
        )}
    ),
    st.just({"tcpSocket": {"port": 8080}}),
)
lifecycles = st.one_of(
    st.none(),
    st.just({"preStop": {"exec": {"command": ["sleep", "5"]}}}),
    st.just({"postStart": {"exec": {"command": ["true"]}}}),
)


@st.composite
def containers(draw: st.DrawFn, name: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "image": "example.com/app:1"}
    env = draw(st.lists(st.tuples(env_names, env_values), max_size=6, unique_by=lambda t: t[0]))
    keep_empty = draw(st.booleans())
    if env or keep_empty:
        body["env"] = [{"name": n, **v} for n, v in env]
    port_list = draw(ports)
    if port_list:
        body["ports"] = port_list
    probe = draw(probes)
    if probe is not None:
        body["readinessProbe"] = probe
    lifecycle = draw(lifecycles)
    if lifecycle is not None:
        body["lifecycle"] = lifecycle
    if draw(st.integers(0, 4)) == 0:
        body["envFrom"] = [{"configMapRef": {"name": "cfg"}}]
    return body


annotation_values = {
    names.ANN_LANE: st.one_of(dns_names, st.just("Not Valid")),
    names.ANN_APP: st.one_of(dns_names, st.just("bad/app")),
    names.ANN_AGENT: st.sampled_from(["true", "false", "maybe"]),
    names.ANN_PORT: st.sampled_from(["8080", "http", "grpc", "0", "nope-"]),
    names.ANN_WARMUP: st.sampled_from(["0", "90s", "2m", "1h30m", "soon", "-1s"]),
    names.ANN_WARMUP_CURVE: st.sampled_from(["linear", "k=2", "aggression=1.5,min=5%", "cubic"]),
    names.ANN_WARMUP_REQUESTS: st.sampled_from(["GET /api x5 c2", "/healthz", "GET"]),
    names.ANN_REGISTER_DELAY: st.sampled_from(["10s", "500ms", "x"]),
    names.ANN_PREWARM: st.sampled_from(["tcp://db:5432", "tcp://db:5432,dns://auth", "https://a/b#200", "db"]),
    names.ANN_PREWARM_POLICY: st.sampled_from(["warn", "require", "never"]),
    names.ANN_DRAIN: st.sampled_from(["0", "5s", "45s", "2m", "25h"]),
    names.ANN_OFFLINE_NOTIFY: st.sampled_from(["http://r:8080/off", "x"]),
    "lanes.io/drian": st.just("5s"),
}


@st.composite
def annotation_maps(draw: st.DrawFn) -> dict[str, str]:
    keys = draw(st.lists(st.sampled_from(sorted(annotation_values)), max_size=5, unique=True))
    out = {key: draw(annotation_values[key]) for key in keys}
    if draw(st.booleans()):
        out["example.com/other"] = "x"
    return out


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    app_names = draw(st.lists(dns_names, min_size=1, max_size=4, unique=True))
    init_names = draw(st.lists(dns_names.filter(lambda n: n not in app_names), max_size=2, unique=True))
    metadata: dict[str, Any] = {"namespace": "shop"}
    if draw(st.booleans()):
        metadata["name"] = draw(dns_names)
    else:
        metadata["generateName"] = draw(dns_names) + "-"
    labels = draw(st.dictionaries(st.sampled_from(["app", "app.kubernetes.io/name", "tier", "lanes.io/lane"]),
                                  dns_names, max_size=3))
    keep_labels = draw(st.booleans())
    if labels or keep_labels:
        metadata["labels"] = labels
    ann = draw(annotation_maps())
    keep_annotations = draw(st.booleans())
    if ann or keep_annotations:
        metadata["annotations"] = ann
    if draw(st.booleans()):
        metadata["ownerReferences"] = [{"kind": draw(st.sampled_from(["ReplicaSet", "StatefulSet", "Job", "Node"])),
                                        "name": draw(dns_names), "controller": True}]
    spec: dict[str, Any] = {"containers": [draw(containers(n)) for n in app_names]}
    if init_names:
        spec["initContainers"] = [{"name": n, "image": "init:1"} for n in init_names]
    if draw(st.booleans()):
        spec["readinessGates"] = draw(st.sampled_from([[], [{"conditionType": "x"}],
                                                       [{"conditionType": names.CONDITION_REGISTERED}]]))
    if draw(st.booleans()):
        spec["terminationGracePeriodSeconds"] = draw(st.integers(0, 600))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


@st.composite
def caches(draw: st.DrawFn) -> FakeOwners | None:
    if draw(st.booleans()):
        return None
    labels = draw(st.sampled_from([{}, {"lanes.io/lane": "blue"}]))
    namespace = {"annotations": draw(annotation_maps()), "labels": labels}
    return FakeOwners({"shop": namespace})


@SETTINGS
@given(pods(), caches())
def test_admission_never_raises_and_the_patch_is_the_mutation(pod: dict[str, Any], owners: FakeOwners | None) -> None:
    before = copy.deepcopy(pod)
    result = admit_pod(pod, "shop", DEFAULTS, owners)
    assert pod == before
    assert all(len(w) <= MAX_WARNING and w.isprintable() for w in result.warnings)
    expected = mutate(pod, resolve_pod(pod, "shop", DEFAULTS, owners).config).pod
    assert jsonpatch.apply_patch(copy.deepcopy(pod), result.patch) == expected
    assert result.injected == bool(result.patch)


@SETTINGS
@given(pods(), caches())
def test_mutation_is_idempotent(pod: dict[str, Any], owners: FakeOwners | None) -> None:
    config = resolve_pod(pod, "shop", DEFAULTS, owners).config
    once = mutate(pod, config)
    twice = mutate(once.pod, resolve_pod(once.pod, "shop", DEFAULTS, owners).config)
    assert twice.pod == once.pod
    assert make_ops(once.pod, twice.pod) == []
    assert admit_pod(once.pod, "shop", DEFAULTS, owners).patch == []


@SETTINGS
@given(pods(), st.sampled_from(["gray", "blue"]), st.booleans(), st.sampled_from([(), ("tcp://db:1",)]))
def test_reinjection_with_another_config_and_back_is_stable(
    pod: dict[str, Any], lane: str, agent: bool, prewarm: tuple[str, ...]
) -> None:
    config = resolve_pod(pod, "shop", DEFAULTS, None).config
    other = config.model_copy(update={"lane": lane, "agent": agent, "prewarm": prewarm})
    direct = mutate(pod, config).pod
    detour = mutate(mutate(direct, other).pod, config).pod
    assert detour == direct


@SETTINGS
@given(pods())
def test_injected_pods_have_the_contract(pod: dict[str, Any]) -> None:
    result = admit_pod(pod, "shop", DEFAULTS, None)
    out = jsonpatch.apply_patch(copy.deepcopy(pod), result.patch)
    config = resolve_pod(pod, "shop", DEFAULTS, None).config
    assert out["metadata"]["labels"][names.LABEL_LANE] == config.lane
    assert names.ANN_STATUS in out["metadata"]["annotations"]
    gates = [g["conditionType"] for g in out["spec"]["readinessGates"]]
    assert gates.count(names.CONDITION_REGISTERED) == 1
    init = [c["name"] for c in out["spec"].get("initContainers", [])]
    assert (names.CONTAINER_AGENT in init) == config.agent
    assert (names.CONTAINER_PREWARM in init) == bool(config.prewarm)
    user_init = [c["name"] for c in pod["spec"].get("initContainers", [])]
    assert init[: len(user_init)] == user_init  # user init containers first, in their order
    for c in out["spec"]["containers"]:
        assert len({e["name"] for e in c["env"]}) == len(c["env"])  # never a duplicate variable
        assert "preStop" in (c.get("lifecycle") or {}) or (not config.agent and config.drain == 0)
    grace = out["spec"].get("terminationGracePeriodSeconds", 30)
    assert grace >= pod["spec"].get("terminationGracePeriodSeconds", 0)
