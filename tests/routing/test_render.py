"""The pure renderer: Lanes + a namespace's pods, Services and readiness -> objects, statuses, events."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.routing import scenario
from webhook.controller.routing import names
from webhook.controller.routing.compare import contains, up_to_date
from webhook.controller.routing.inventory import build_inventory, ready_counts
from webhook.controller.routing.objects import baggage_regex, cookie_regex
from webhook.controller.routing.render import RenderOptions, render
from webhook.controller.routing.spec import LaneError, ValueMatch, parse_lane

ALL_READY = {"a-base": 1, "b-base": 1, "c-base": 1, "a-gray": 1, "c-gray": 1}
OPTIONS = RenderOptions(now="2026-01-01T00:00:00Z")


def rendered(lanes: list[dict[str, Any]], ready: dict[str, int] | None = None, options: RenderOptions = OPTIONS):
    pods, services = scenario.workloads()
    inventory = build_inventory(scenario.NAMESPACE, pods, services, ALL_READY if ready is None else ready)
    return render([parse_lane(lane) for lane in lanes], inventory, options)


def by_name(result: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in result.objects}


def route_lanes(vs: dict[str, Any]) -> list[str]:
    return [rule["name"] for rule in vs["spec"]["http"]]


# --- the scenario ---------------------------------------------------------------------------------------------------


def test_scenario_generates_per_lane_services_for_versions_that_exist_and_the_baseline() -> None:
    objects = by_name(rendered([scenario.gray_lane()]))
    services = sorted(name for kind, name in objects if kind == "Service")
    assert services == ["a-base", "a-gray", "b-base", "c-base", "c-gray"]  # no b-gray: b has no gray pods
    svc = objects[("Service", "c-gray")]
    assert svc["spec"]["selector"] == {"app": "c", names.LABEL_LANE: "gray"}
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": 8080}]
    assert svc["metadata"]["labels"][names.LABEL_GENERATED] == "true"
    assert svc["metadata"]["ownerReferences"][0]["uid"] == "uid-gray"


def test_edge_route_colors_by_header_and_strips_client_tags_on_the_catch_all() -> None:
    route = by_name(rendered([scenario.gray_lane()]))[("HTTPRoute", "gray-edge")]
    assert route["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "gateways"}
    ]
    assert route["spec"]["hostnames"] == ["base.example.com"]
    colored, catch_all = route["spec"]["rules"]
    assert colored["matches"][0]["headers"] == [{"type": "Exact", "name": "x-user-id", "value": "100"}]
    assert colored["filters"][0]["requestHeaderModifier"]["set"] == [
        {"name": "x-lane", "value": "gray"},
        {"name": "baggage", "value": "lanes.lane=gray"},
    ]
    assert [b["name"] for b in colored["backendRefs"]] == ["a-gray"]
    assert catch_all["filters"][0]["requestHeaderModifier"]["remove"] == ["x-lane", "baggage"]
    assert [b["name"] for b in catch_all["backendRefs"]] == ["a-base"]


def test_istio_rules_exist_only_for_services_with_a_ready_lane_version() -> None:
    objects = by_name(rendered([scenario.gray_lane()]))
    assert route_lanes(objects[("VirtualService", "a-lanes")]) == ["lane-gray", "baseline"]
    assert route_lanes(objects[("VirtualService", "b-lanes")]) == ["baseline"]  # fallback: no gray b
    assert route_lanes(objects[("VirtualService", "c-lanes")]) == ["lane-gray", "baseline"]
    rule = objects[("VirtualService", "a-lanes")]["spec"]["http"][0]
    assert rule["match"] == [
        {"headers": {"x-lane": {"exact": "gray"}}},
        {"headers": {"baggage": {"regex": baggage_regex("gray")}}},
    ]
    assert rule["route"] == [{"destination": {"host": "a.shop.svc.cluster.local", "subset": "gray"}}]
    default = objects[("VirtualService", "a-lanes")]["spec"]["http"][-1]
    assert default["route"][0]["destination"]["subset"] == "base"


def test_destination_rule_has_a_subset_per_lane_with_slow_start_from_the_pods_warmup() -> None:
    dr = by_name(rendered([scenario.gray_lane()]))[("DestinationRule", "a-lanes")]
    subsets = {s["name"]: s for s in dr["spec"]["subsets"]}
    assert subsets["gray"]["labels"] == {names.LABEL_LANE: "gray"}
    assert subsets["gray"]["trafficPolicy"]["loadBalancer"]["warmupDurationSecs"] == "30s"
    assert "trafficPolicy" not in subsets["base"]  # base pods set no warm-up


def test_warmup_comes_from_the_webhooks_resolved_status_when_present() -> None:
    pods, services = scenario.workloads()
    pods[3]["metadata"]["annotations"] = {names.ANN_STATUS: '{"version":1,"config":{"warmup":90.0}}'}
    inventory = build_inventory("shop", pods, services, ALL_READY)
    result = render([parse_lane(scenario.gray_lane())], inventory, OPTIONS)
    dr = by_name(result)[("DestinationRule", "a-lanes")]
    gray = next(s for s in dr["spec"]["subsets"] if s["name"] == "gray")
    assert gray["trafficPolicy"]["loadBalancer"]["warmupDurationSecs"] == "90s"


def test_status_reports_per_service_lane_endpoints_fallback_and_objects() -> None:
    status = rendered([scenario.gray_lane()]).statuses["gray"]
    services = {s["name"]: s for s in status["services"]}
    assert services["a"] == {
        "name": "a",
        "lane": "gray",
        "readyEndpoints": 1,
        "objects": sorted(["DestinationRule/a-lanes", "Service/a-base", "Service/a-gray", "VirtualService/a-lanes"]),
    }
    assert services["b"]["lane"] == "base" and services["b"]["fallback"] == names.FALLBACK_NO_VERSION
    assert status["inLane"] == "2/3"
    assert status["objects"] == ["HTTPRoute/gray-edge"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Accepted": "True", "Ready": "True", "Degraded": "False"}


# --- health-aware fallback ------------------------------------------------------------------------------------------


def test_lane_version_without_ready_endpoints_falls_back_to_baseline_everywhere() -> None:
    lane = scenario.gray_lane(outputs=["GatewayAPI", "Istio", "GAMMA", "EastWest"])
    lane["spec"]["eastWest"] = {"parentRefs": [{"name": "mesh", "namespace": "gateways"}]}
    result = rendered([lane], {**ALL_READY, "c-gray": 0})
    objects = by_name(result)
    assert route_lanes(objects[("VirtualService", "c-lanes")]) == ["baseline"]
    for name in ("c-lanes-mesh", "c-lanes-eastwest"):
        rules = objects[("HTTPRoute", name)]["spec"]["rules"]
        assert [r["backendRefs"][0]["name"] for r in rules] == ["c-base"]
    assert ("Service", "c-gray") in objects  # kept: its endpoints tell when it is back
    c = next(s for s in result.statuses["gray"]["services"] if s["name"] == "c")
    assert c["fallback"] == names.FALLBACK_NO_READY and c["lane"] == "base"
    degraded = next(c for c in result.statuses["gray"]["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and "c" in degraded["message"]


def test_entry_without_ready_endpoints_keeps_the_tag_but_routes_to_the_baseline_entry() -> None:
    route = by_name(rendered([scenario.gray_lane()], {**ALL_READY, "a-gray": 0}))[("HTTPRoute", "gray-edge")]
    colored = route["spec"]["rules"][0]
    assert colored["backendRefs"][0]["name"] == "a-base"
    assert colored["filters"][0]["requestHeaderModifier"]["set"][0] == {"name": "x-lane", "value": "gray"}


def test_fallback_and_restore_are_events_against_the_previous_status() -> None:
    healthy = rendered([scenario.gray_lane()])
    before = scenario.with_status(scenario.gray_lane(), healthy.statuses["gray"])
    falling = rendered([before], {**ALL_READY, "c-gray": 0})
    assert [(e.reason, e.warning) for e in falling.events] == [("LaneFallback", True)]
    assert "c" in falling.events[0].message
    after = scenario.with_status(scenario.gray_lane(), falling.statuses["gray"])
    restored = rendered([after])
    assert [e.reason for e in restored.events] == ["LaneRestored"]
    assert rendered([scenario.with_status(scenario.gray_lane(), restored.statuses["gray"])]).events == []


def test_condition_transition_time_is_kept_while_the_status_holds() -> None:
    first = rendered([scenario.gray_lane()])
    later = RenderOptions(now="2026-06-01T00:00:00Z")
    again = rendered([scenario.with_status(scenario.gray_lane(), first.statuses["gray"])], options=later)
    assert again.statuses["gray"] == first.statuses["gray"]
    flipped = rendered(
        [scenario.with_status(scenario.gray_lane(), first.statuses["gray"])], {**ALL_READY, "c-gray": 0}, later
    )
    degraded = next(c for c in flipped.statuses["gray"]["conditions"] if c["type"] == "Degraded")
    assert degraded["lastTransitionTime"] == "2026-06-01T00:00:00Z"


# --- modes ------------------------------------------------------------------------------------------------------------


def test_strict_lane_with_a_missing_service_generates_nothing_and_says_why() -> None:
    result = rendered([scenario.gray_lane(mode="Strict")])
    assert result.objects == []
    status = result.statuses["gray"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "MissingServices" and "b" in ready["message"]
    assert status["inLane"] == "0/3"
    b = next(s for s in status["services"] if s["name"] == "b")
    assert b["fallback"] == names.FALLBACK_NO_VERSION


def test_strict_lane_keeps_rules_of_a_version_without_ready_endpoints() -> None:
    lane = scenario.gray_lane(mode="Strict", services=["a", "c"])
    result = rendered([lane], {**ALL_READY, "c-gray": 0})
    assert route_lanes(by_name(result)[("VirtualService", "c-lanes")]) == ["lane-gray", "baseline"]
    ready = next(c for c in result.statuses["gray"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "NoReadyEndpoints"


def test_default_group_is_every_app_in_the_namespace() -> None:
    lane = scenario.gray_lane()
    del lane["spec"]["services"]
    status = rendered([lane]).statuses["gray"]
    assert [s["name"] for s in status["services"]] == ["a", "b", "c"]


# --- percent, cookies, query ------------------------------------------------------------------------------------------


def test_percent_splits_the_catch_all_and_tags_only_the_lane_share() -> None:
    route = by_name(rendered([scenario.gray_lane(percent=10)]))[("HTTPRoute", "gray-edge")]
    catch_all = route["spec"]["rules"][-1]
    lane_ref, base_ref = catch_all["backendRefs"]
    assert (lane_ref["name"], lane_ref["weight"], base_ref["name"], base_ref["weight"]) == ("a-gray", 10, "a-base", 90)
    assert lane_ref["filters"][0]["requestHeaderModifier"]["set"][0] == {"name": "x-lane", "value": "gray"}
    assert base_ref["filters"][0]["requestHeaderModifier"]["remove"] == ["x-lane", "baggage"]
    assert "filters" not in catch_all  # rule-level filters would apply to both shares


def test_cookie_and_query_rules_become_route_matches() -> None:
    lane = scenario.gray_lane(
        match=[
            {"cookies": [{"name": "canary", "value": "always"}]},
            {"queryParams": [{"name": "lane", "value": "gray"}], "headers": [{"name": "x-env", "value": "t"}]},
        ]
    )
    matches = by_name(rendered([lane]))[("HTTPRoute", "gray-edge")]["spec"]["rules"][0]["matches"]
    assert matches[0]["headers"][0]["name"] == "Cookie" and matches[0]["headers"][0]["type"] == "RegularExpression"
    assert matches[1]["queryParams"] == [{"type": "Exact", "name": "lane", "value": "gray"}]
    assert matches[1]["headers"] == [{"type": "Exact", "name": "x-env", "value": "t"}]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("canary=always", True),
        ("a=1; canary=always", True),
        ("canary=always; b=2", True),
        ("xcanary=always", False),
        ("canary=alwaysx", False),
        ("canary=never", False),
    ],
)
def test_cookie_regex_matches_exactly_that_cookie(header: str, expected: bool) -> None:
    pattern = cookie_regex([ValueMatch("canary", "always")])
    assert bool(re.search(pattern, header)) is expected


def test_several_cookies_match_in_any_order() -> None:
    pattern = cookie_regex([ValueMatch("a", "1"), ValueMatch("b", "2")])
    assert re.search(pattern, "b=2; x=y; a=1") and re.search(pattern, "a=1; b=2")
    assert not re.search(pattern, "a=1")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("lanes.lane=gray", True),
        ("userId=7,lanes.lane=gray", True),
        ("lanes.lane=gray;prop=1, other=2", True),
        ("lanes.lane = gray", True),
        ("lanes.lane=grayer", False),
        ("xlanes.lane=gray", False),
        ("lanes.lane=blue", False),
    ],
)
def test_baggage_regex(header: str, expected: bool) -> None:
    assert bool(re.fullmatch(baggage_regex("gray"), header)) is expected


# --- several lanes, deletion ------------------------------------------------------------------------------------------


def two_lanes() -> list[dict[str, Any]]:
    blue = scenario.lane("blue", uid="uid-blue", services=["b"])
    return [scenario.gray_lane(), blue]


def test_a_second_lane_gets_its_own_rules_in_the_shared_per_service_objects() -> None:
    pods, services = scenario.workloads()
    pods.append(scenario.pod("b", "blue"))
    inventory = build_inventory("shop", pods, services, {**ALL_READY, "b-blue": 1})
    result = render([parse_lane(lane) for lane in two_lanes()], inventory, OPTIONS)
    objects = by_name(result)
    assert route_lanes(objects[("VirtualService", "b-lanes")]) == ["lane-blue", "baseline"]
    assert route_lanes(objects[("VirtualService", "a-lanes")]) == ["lane-gray", "baseline"]
    owners = [o["name"] for o in objects[("VirtualService", "b-lanes")]["metadata"]["ownerReferences"]]
    assert owners == ["blue", "gray"]
    assert [o["name"] for o in objects[("Service", "b-blue")]["metadata"]["ownerReferences"]] == ["blue"]
    assert result.statuses["blue"]["inLane"] == "1/1"


def test_a_lane_being_deleted_contributes_nothing() -> None:
    gray, blue = two_lanes()
    gray["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    objects = by_name(rendered([gray, blue]))
    assert ("HTTPRoute", "gray-edge") not in objects and ("Service", "a-gray") not in objects
    assert [o["name"] for o in objects[("Service", "b-base")]["metadata"]["ownerReferences"]] == ["blue"]
    assert rendered([gray]).objects == []


def test_render_is_deterministic_and_independent_of_input_order() -> None:
    pods, services = scenario.workloads()
    first = render([parse_lane(x) for x in two_lanes()], build_inventory("shop", pods, services, ALL_READY), OPTIONS)
    second = render(
        [parse_lane(x) for x in reversed(two_lanes())],
        build_inventory("shop", list(reversed(pods)), list(reversed(services)), ALL_READY),
        OPTIONS,
    )
    assert first.objects == second.objects and first.statuses == second.statuses


def test_outputs_the_cluster_does_not_serve_are_reported_not_rendered() -> None:
    options = RenderOptions(now=OPTIONS.now, available=frozenset({"GatewayAPI"}))
    result = rendered([scenario.gray_lane()], options=options)
    assert not any(o["kind"] in ("VirtualService", "DestinationRule") for o in result.objects)
    degraded = next(c for c in result.statuses["gray"]["conditions"] if c["type"] == "Degraded")
    assert "Istio" in degraded["message"]


def test_east_west_routes_carry_the_service_names_as_hostnames() -> None:
    options = RenderOptions(
        now=OPTIONS.now, outputs=("EastWest",), east_west=(parse_lane(scenario.gray_lane()).parent_refs[0],)
    )
    route = by_name(rendered([scenario.gray_lane()], options=options))[("HTTPRoute", "c-lanes-eastwest")]
    assert route["spec"]["hostnames"] == ["c", "c.shop", "c.shop.svc", "c.shop.svc.cluster.local"]
    assert [r["backendRefs"][0]["name"] for r in route["spec"]["rules"]] == ["c-gray", "c-base"]


def test_gamma_routes_have_the_service_as_parent() -> None:
    route = by_name(rendered([scenario.gray_lane(outputs=["GAMMA"])]))[("HTTPRoute", "a-lanes-mesh")]
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "a"}]
    assert "gateway" not in route["spec"]


# --- spec validation (the same rules as the CRD, for files) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "metadata_name", "message"),
    [
        ({"entry": {"service": "x"}, "services": ["a"]}, "gray", "must be one of spec.services"),
        ({"percent": 101}, "gray", "between 0 and 100"),
        ({"match": [{}]}, "gray", "at least one of headers, cookies, queryParams"),
        ({}, "Gray", "DNS label"),
        ({}, "base", "its own baseline"),
        ({"match": [{"headers": [{"name": "bad header", "value": "1"}]}]}, "gray", "valid HTTP header name"),
        ({"match": [{"headers": [{"name": "Cookie", "value": "1"}]}]}, "gray", "use cookies"),
        ({"mode": "Loose"}, "gray", "supported values"),
        ({"gateway": {"parentRefs": [{"name": "edge"}]}}, "gray", "spec.entry: Required"),
        ({"outputs": ["Linkerd"]}, "gray", "supported values"),
    ],
)
def test_invalid_lanes_are_rejected_with_the_field_named(
    spec: dict[str, Any], metadata_name: str, message: str
) -> None:
    with pytest.raises(LaneError, match=re.escape(message)):
        parse_lane(scenario.lane(metadata_name, **spec))


# --- inventory and compare --------------------------------------------------------------------------------------------


def test_ready_counts_only_explicitly_ready_endpoints_and_no_double_counting_across_families() -> None:
    def slice_(service: str, family: str, *ready: Any) -> dict[str, Any]:
        return {
            "metadata": {"labels": {names.SERVICE_NAME_LABEL: service}},
            "addressType": family,
            "endpoints": [{"conditions": {"ready": r}} if r is not None else {"conditions": {}} for r in ready],
        }

    counts = ready_counts([slice_("a-gray", "IPv4", True, False, None), slice_("a-gray", "IPv6", True)])
    assert counts == {"a-gray": 1}


def test_a_service_selecting_one_lane_only_is_not_a_base_service() -> None:
    pods, services = scenario.workloads()
    pinned = scenario.service("a-only-gray")
    pinned["spec"]["selector"] = {"app": "a", names.LABEL_LANE: "gray"}
    inventory = build_inventory("shop", pods, [*services, pinned], {})
    assert inventory.apps["a"].service is not None and inventory.apps["a"].service.name == "a"
    assert inventory.apps["a"].other_services == ()


def test_up_to_date_ignores_server_defaults_but_not_changes() -> None:
    desired = by_name(rendered([scenario.gray_lane()]))[("Service", "a-gray")]
    live = {
        **desired,
        "metadata": {**desired["metadata"], "resourceVersion": "7", "uid": "x", "managedFields": []},
        "spec": {
            **desired["spec"],
            "clusterIP": "10.0.0.7",
            "ports": [{**desired["spec"]["ports"][0], "protocol": "TCP"}],
        },
        "status": {"loadBalancer": {}},
    }
    assert up_to_date(live, desired)
    changed = {**live, "spec": {**live["spec"], "selector": {"app": "a"}}}
    assert not up_to_date(changed, desired)
    orphaned = {**live, "metadata": {**live["metadata"], "ownerReferences": []}}
    assert not up_to_date(orphaned, desired)
    assert not contains([1, 2], [1])


def test_long_names_are_cut_with_a_hash() -> None:
    long = "x" * 60
    name = names.object_name(long, "gray")
    assert len(name) == 63 and name != names.object_name(long, "grey")
