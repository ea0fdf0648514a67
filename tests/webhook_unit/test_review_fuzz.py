"""Structural fuzzing of the whole AdmissionReview through the server's admission entry (issue #11.10).

Valid reviews of realistic pods (env, envFrom, probes by number and by name, init containers, owners, lanes.io
annotations, and a pod Lanes already injected, so the ``lanes.io/status`` path is walked too) are corrupted at
random places: a value becomes null, a number, a boolean, a list, an object, a huge or an odd string, or a key is
added. Each corrupted review goes through :meth:`AdmissionHandler.mutate`, the synchronous entry the HTTP endpoint
calls. The core must never raise ("internal error in the core; admitted unchanged" is the transport's safety net,
not an answer), and every reply must be a valid AdmissionReview whose patch applies to the object it was given.

Deterministic for CI: ``derandomize=True`` makes hypothesis derive its examples from the test itself, and the
number of examples is bounded.
"""

from __future__ import annotations

import base64
import copy
import logging
from typing import Any

import jsonpatch
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.webhook_unit.factories import FakeOwners, config
from webhook.admission.app import AdmissionHandler
from webhook.admission.metrics import Metrics
from webhook.contract import names
from webhook.contract.defaults import ClusterDefaults
from webhook.injection.mutation import mutate

FUZZ = settings(
    max_examples=500,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ODD_STRINGS = [
    "", " ", "\x00", "\n", "²", "٣", "-1", "0", "65536", "1e309", "NaN", "true", "null", "[]", "{}",
    "http", "lanes-agent", "lanes-prewarm", "istio-proxy", "UDP", "windows", "é" * 5, "💥", "../../x",
    "a=b,c", "lanes.lane=x", "tracecontext", "x" * 5000,
]

junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(ODD_STRINGS),
        st.text(max_size=12),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(["name", "value", "port", "containerPort"]), st.text(max_size=6)),
                        inner, max_size=3),
    ),
    max_leaves=6,
)


def _container(name: str, port: int, **extra: Any) -> dict[str, Any]:
    readiness: dict[str, Any] = {
        "path": "/ready", "port": "http", "host": "127.0.0.1", "httpHeaders": [{"name": "Cookie", "value": "a=b"}],
    }
    if name == "side":
        readiness = {"path": "/app-health/side/readyz", "port": 15020}
    return {
        "name": name,
        "image": f"registry.example/{name}:1",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}, {"containerPort": 9090}],
        "env": [
            {"name": "PLAIN", "value": "1"},
            {"name": names.ENV_OTEL_RESOURCE_ATTRIBUTES, "value": "service.name=x"},
            {"name": names.ENV_OTEL_PROPAGATORS, "value": "b3"},
            {"name": "FROM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "readinessProbe": {"httpGet": readiness, "periodSeconds": 5},
        "lifecycle": {"postStart": {"exec": {"command": ["true"]}}},
        **extra,
    }


def _base_pods() -> list[dict[str, Any]]:
    plain = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7d9f8c-",
            "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "7d9f8c"},
            "annotations": {
                names.ANN_WARMUP: "30s",
                names.ANN_PREWARM: "tcp://db:5432",
                names.ANN_PORT: "http",
                "traffic.sidecar.istio.io/excludeInboundPorts": "9090",
                "config.linkerd.io/skip-inbound-ports": "15000-16000",
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c",
                                 "uid": "u", "controller": True}],
        },
        "spec": {
            "initContainers": [
                {"name": "istio-init", "image": "istio/proxyv2"},
                {"name": "migrate", "image": "registry.example/migrate:1"},
            ],
            "containers": [
                {"name": "istio-proxy", "image": "istio/proxyv2", "ports": [{"containerPort": 15090}],
                 "env": [{"name": "ISTIO_KUBE_APP_PROBERS", "value": '{"/app-health/side/readyz": {"httpGet":'
                          ' {"path": "/r", "port": 8081, "host": "127.0.0.1"}}}'}]},
                _container("web", 8080, envFrom=[{"configMapRef": {"name": "cfg"}}]),
                _container("side", 8081),
            ],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}},
            "securityContext": {"runAsUser": 0},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 20,
            "readinessGates": [{"conditionType": "other"}],
        },
    }
    injected = mutate(copy.deepcopy(plain), config(prewarm=("tcp://db:5432",))).pod
    minimal = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "m", "namespace": "shop"},
               "spec": {"containers": [{"name": "m", "image": "m"}]}}
    return [plain, injected, minimal]


BASES = _base_pods()


def _review(obj: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "8d2b0f6e-0000-4000-8000-000000000001",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "shop",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": obj,
            "dryRun": False,
        },
    }


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node's path below ``value`` (keys and indices), the node itself included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _containers(value: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    return parent, path[-1]


REVIEWS = [orjson.dumps(_review(base)) for base in BASES]  # JSON text: each draw parses a fresh, unshared copy
PATHS = [[p for p in _paths(orjson.loads(review)) if len(p) >= 2] for review in REVIEWS]  # not the whole review


@st.composite
def reviews(draw: st.DrawFn) -> dict[str, Any]:
    """A valid review with one to four nodes replaced by junk, or a key added to an object, or an item inserted
    into a list. Cheap to draw: a few choices per example, not one per node."""
    which = draw(st.integers(0, len(REVIEWS) - 1))
    review = orjson.loads(REVIEWS[which])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS[which]))
        try:
            parent, last = _containers(review, path)
            target = parent[last]
        except (KeyError, IndexError, TypeError):  # an earlier corruption replaced an ancestor
            continue
        action = draw(st.integers(0, 5))
        if action == 0 and isinstance(target, dict):
            target[draw(st.sampled_from(["name", "ports", "env", "os", "x", "readinessProbe", "nodeSelector"]))] = (
                draw(junk)
            )
        elif action == 0 and isinstance(target, list):
            target.insert(draw(st.integers(0, len(target))), draw(junk))
        else:
            parent[last] = draw(junk)
    return review


HANDLER = AdmissionHandler(
    ClusterDefaults(),
    FakeOwners(namespaces={"shop": {"labels": {}, "annotations": {}}}),
    Metrics(),
)


@pytest.fixture(autouse=True)
def _errors_are_visible(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="lanes.admission")


@FUZZ
@given(review=reviews())
def test_no_corrupted_review_reaches_the_internal_error_path(review: dict[str, Any]) -> None:
    sent = orjson.dumps(review)
    records: list[logging.LogRecord] = []
    handler = _Collect(records)
    logger = logging.getLogger("lanes.admission")
    logger.addHandler(handler)
    try:
        answer = HANDLER.mutate(sent)
    finally:
        logger.removeHandler(handler)
    errors = [r for r in records if "internal error" in r.getMessage()]
    detail = "\n".join(logging.Formatter().formatException(r.exc_info) for r in errors if r.exc_info)
    assert answer.outcome != "error", detail
    assert not errors, detail
    if answer.status == 400:  # the envelope is not an AdmissionReview: a precise error, nothing else to check
        assert "error" in orjson.loads(answer.body)
        return
    assert answer.status == 200
    body = orjson.loads(answer.body)
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    response = body["response"]
    assert response["allowed"] is True
    assert response["uid"] == review["request"]["uid"]
    for warning in response.get("warnings", []):
        assert isinstance(warning, str) and 0 < len(warning) <= 120 and warning.isprintable()
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
        ops = orjson.loads(base64.b64decode(response["patch"]))
        obj = orjson.loads(sent)["request"]["object"]  # as the API server holds it: parsed, nothing shared
        jsonpatch.apply_patch(obj, ops)  # raises when an op does not fit the object it was computed for


class _Collect(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("bad_name", [{"a": 1}, ["LANES_LANE"], None, 7, 1.5, True])
def test_env_entry_whose_name_is_not_a_string_is_kept_and_does_not_raise(bad_name: Any) -> None:
    """The case the issue found (``TypeError: unhashable type: 'dict'``): such entries stay as the user wrote them
    (the API server rejects the pod with its own message) and the rest is injected."""
    pod = copy.deepcopy(BASES[2])
    odd = {"name": bad_name, "value": "x"}
    pod["spec"]["containers"][0]["env"] = [odd, {"name": names.ENV_LANE, "value": "mine"}]
    answer = HANDLER.mutate(orjson.dumps(_review(pod)))
    assert answer.outcome == "injected", answer
    ops = orjson.loads(base64.b64decode(orjson.loads(answer.body)["response"]["patch"]))
    out = jsonpatch.apply_patch(pod, ops)
    env = out["spec"]["containers"][0]["env"]
    assert odd in env
    assert [e for e in env if e.get("name") == names.ENV_LANE] == [{"name": names.ENV_LANE, "value": "mine"}]


def test_status_annotation_with_odd_records_does_not_raise() -> None:
    """``lanes.io/status`` is user-writable: its records may hold anything."""
    pod = copy.deepcopy(BASES[2])
    pod["metadata"]["annotations"] = {
        names.ANN_STATUS: orjson.dumps(
            {"version": 1, "hash": "x", "injected": {"containers": {"m": {"env": [{"a": 1}, ["b"]], "otel": {}}},
                                                     "initContainers": [{"x": 1}]}}
        ).decode()
    }
    answer = HANDLER.mutate(orjson.dumps(_review(pod)))
    assert answer.outcome == "injected", answer
