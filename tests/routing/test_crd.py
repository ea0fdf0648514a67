"""The Lane CRD on the real API server: good Lanes are accepted (with defaults), bad ones are rejected at apply
time with a message that names the problem."""

from __future__ import annotations

from typing import Any

import pytest

from tests.routing.conftest import Routing
from webhook.kube.client import KubeError

GATEWAY = {"parentRefs": [{"name": "edge", "namespace": "gateways"}], "hostnames": ["base.example.com"]}


def rejected(routing: Routing, name: str, spec: dict[str, Any]) -> str:
    with pytest.raises(KubeError) as caught:
        routing.create_lane(name, **spec)
    assert caught.value.status == 422, caught.value
    return caught.value.message


def test_a_full_lane_is_accepted_and_defaulted(routing: Routing) -> None:
    created = routing.create_lane(
        "gray",
        services=["a", "b", "c"],
        match=[
            {"headers": [{"name": "x-user-id", "value": "100"}]},
            {"cookies": [{"name": "canary", "value": "always"}]},
            {"queryParams": [{"name": "lane", "value": "gray"}], "headers": [{"name": "x-env", "value": "t"}]},
        ],
        percent=10,
        entry={"service": "a", "port": 8080},
        gateway=GATEWAY,
        outputs=["GatewayAPI", "Istio", "GAMMA", "EastWest"],
        eastWest={"parentRefs": [{"name": "mesh", "namespace": "gateways"}]},
    )
    spec = created["spec"]
    assert spec["baseline"] == "base" and spec["mode"] == "Permissive"
    assert spec["match"][0]["headers"][0]["type"] == "Exact"
    assert spec["gateway"]["stripClientTag"] is True


def test_a_minimal_lane_is_accepted(routing: Routing) -> None:
    assert routing.create_lane("blue", services=["b"])["spec"]["percent"] == 0


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("gray", {"services": ["a"], "entry": {"service": "x"}}, "spec.entry.service must be one of spec.services"),
        ("gray", {"percent": 101}, "should be less than or equal to 100"),
        ("gray", {"percent": -1}, "should be greater than or equal to 0"),
        ("gray", {"match": [{}]}, "a match rule needs at least one of headers, cookies, queryParams"),
        ("gray", {"match": [{"headers": []}]}, "a match rule needs at least one of headers, cookies, queryParams"),
        ("base", {}, "a lane cannot be its own baseline"),
        ("blue", {"baseline": "blue"}, "a lane cannot be its own baseline"),
        ("gray.v2", {}, "a lane name must be a DNS label"),
        ("gray", {"match": [{"headers": [{"name": "x user", "value": "1"}]}]}, "should match"),
        ("gray", {"match": [{"headers": [{"name": "Cookie", "value": "a=1"}]}]}, "match a cookie with cookies"),
        ("gray", {"match": [{"headers": [{"name": "x", "value": "1", "type": "Prefix"}]}]}, "Unsupported value"),
        ("gray", {"mode": "Loose"}, "Unsupported value"),
        ("gray", {"gateway": GATEWAY}, "spec.entry is required with spec.gateway"),
        ("gray", {"outputs": ["GatewayAPI"]}, "spec.gateway is required by the GatewayAPI output"),
        ("gray", {"outputs": ["Linkerd"]}, "Unsupported value"),
        ("gray", {"services": ["a", "a"]}, "Duplicate value"),
        ("gray", {"entry": {"service": "a", "port": 70000}}, "should be less than or equal to 65535"),
        (
            "gray",
            {"match": [{"cookies": [{"name": f"c{i}", "value": "1"} for i in range(4)]}]},
            "must have at most 3 items",
        ),
        ("gray", {"entry": {"service": "a"}, "gateway": {"parentRefs": []}}, "should have at least 1 items"),
    ],
)
def test_bad_lanes_are_rejected_at_apply(routing: Routing, name: str, spec: dict[str, Any], message: str) -> None:
    assert message in rejected(routing, name, spec)


def test_status_is_a_subresource_and_printer_columns_show_mode_services_ready(routing: Routing) -> None:
    routing.create_lane("gray", services=["a"])
    crd = routing.kube.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/lanes.lanes.io")
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Mode", "Services", "Ready", "Age"]
    table = routing.kube.get(
        routing.lanes_path(), accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    )
    assert [c["name"] for c in table["columnDefinitions"]][:5] == ["Name", "Mode", "Services", "Ready", "Age"]
    # a plain update cannot write status
    lane = routing.lane("gray")
    lane["status"] = {"inLane": "9/9"}
    updated = routing.kube.replace(routing.lanes_path("gray"), lane)
    assert "inLane" not in (updated.get("status") or {})
