"""The heart of lane routing: (Lanes, what the namespace has, options) -> generated objects, statuses, events.

Pure and deterministic: no I/O, no clock (the time for new condition transitions comes in the options), the same
input always gives the same objects in the same order. The reconciler applies what it returns; ``lanes route``
prints it.

Why the whole namespace at once and not one Lane at a time: some objects serve every lane of a service. Istio
wants one VirtualService and one DestinationRule per host (rules for ``gray`` and ``blue`` of service ``b`` must
be in the same object, in a known order), and the baseline's per-lane Service is the fallback of every Lane.
Rendering all Lanes of the namespace together gives each such object exactly one, complete, definition, owned
(ownerReferences) by every Lane it serves; :func:`render_lane` is the one-Lane view of the same function.

What is generated, per DESIGN.md ("Lane routing"):

- per service of a lane group: ``<service>-<lane>`` Services (the base Service's selector plus ``lanes.io/lane``)
  for the baseline and for every lane with pods of that service;
- output ``GatewayAPI``: one HTTPRoute per Lane on its Gateway: a colored rule (any match rule, tag set as
  ``x-lane`` + ``baggage``) to the entry's lane version, and a catch-all that removes client-sent tags and sends
  ``percent`` of the rest into the lane (weighted backendRefs, the tag set on the lane's share only);
- output ``Istio``: per service a DestinationRule (a subset per lane, slow start from ``lanes.io/warmup``) and a
  VirtualService (tag header or baggage -> the lane's subset, default -> baseline);
- output ``GAMMA``: per service and port an HTTPRoute whose parent is the Service;
- output ``EastWest``: the same per-service rules on a shared in-cluster Gateway, hostnames = the service's DNS
  names: for data planes without GAMMA (Traefik), so that apps calling ``http://gateway`` with ``Host: b`` get
  per-hop lane routing.

A lane's rule for a service exists only while that service's lane version has ready endpoints (Permissive):
otherwise its requests fall back to the baseline, and the tag travels on. In Strict mode a service with no
version (or no Service) blocks the whole lane: nothing is generated for it and the status says why; a version
without ready endpoints keeps its rules (requests fail rather than leave the lane) and the lane is Degraded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.controller.routing import names, objects
from webhook.controller.routing.inventory import App, BaseService, Inventory, Version
from webhook.controller.routing.spec import Lane, ParentRef

JSON = dict[str, Any]

MAX_HOP_LANES = 15
"""An HTTPRoute has at most 16 rules: 15 lanes plus the default per service."""


@dataclass(frozen=True)
class RenderOptions:
    tag_header: str = "x-lane"
    outputs: tuple[str, ...] = (names.OUTPUT_GATEWAY, names.OUTPUT_ISTIO)
    """Outputs of Lanes that name none (Helm value ``controller.lanes.outputs``)."""
    east_west: tuple[ParentRef, ...] = ()
    """The shared in-cluster Gateway of the EastWest output, for Lanes that name none."""
    cluster_domain: str = "cluster.local"
    available: frozenset[str] | None = None
    """Outputs whose API the cluster serves (None: all, e.g. offline). Others are reported, not rendered."""
    now: str = "1970-01-01T00:00:00Z"
    """The time new condition transitions get (RFC 3339)."""


@dataclass(frozen=True)
class LaneEvent:
    lane: str
    reason: str
    message: str
    warning: bool


@dataclass
class RenderResult:
    objects: list[JSON] = field(default_factory=list)
    statuses: dict[str, JSON] = field(default_factory=dict)
    events: list[LaneEvent] = field(default_factory=list)


@dataclass
class _ServiceState:
    """One service of one lane's group, as that lane sees it."""

    name: str
    app: App | None
    base: BaseService | None
    version: Version | None
    lane_service: str = ""
    ready: int = 0
    fallback: str = ""
    message: str = ""
    active: bool = False  # the lane's rule for it is generated
    objects: list[str] = field(default_factory=list)


@dataclass
class _Hop:
    """Everything the lanes of a namespace want for one service (the shared per-service objects)."""

    app: App
    base: BaseService
    baselines: dict[str, Version | None] = field(default_factory=dict)
    owners: dict[str, JSON] = field(default_factory=dict)  # lane -> ownerReference
    versions: dict[str, Version] = field(default_factory=dict)  # lanes with pods of this service
    active: dict[str, bool] = field(default_factory=dict)
    wants: dict[str, list[str]] = field(default_factory=dict)  # output -> lanes
    east_west: list[ParentRef] = field(default_factory=list)
    baseline: str = ""


def fqdn(service: str, namespace: str, domain: str) -> str:
    return f"{service}.{namespace}.svc.{domain}"


def _port_of(base: BaseService, wanted: int | None) -> tuple[int | None, str]:
    numbers = base.port_numbers()
    if wanted is not None:
        return (wanted, "") if wanted in numbers else (None, f"Service {base.name} has no port {wanted}")
    if len(numbers) == 1:
        return numbers[0], ""
    http = [int(p["port"]) for p in base.ports if p.get("name") == "http"]
    if http:
        return http[0], ""
    return None, f"Service {base.name} has several ports: set spec.entry.port"


def _hop_port(base: BaseService) -> int:
    http = [int(p["port"]) for p in base.ports if p.get("name") == "http"]
    return http[0] if http else base.port_numbers()[0]


def render(lanes: Iterable[Lane], inventory: Inventory, options: RenderOptions | None = None) -> RenderResult:
    """Objects, statuses (by lane name) and events for every Lane of ``inventory.namespace``. Lanes being deleted
    contribute nothing (what only they generated is therefore no longer rendered, and gets deleted)."""
    options = options or RenderOptions()
    available = options.available
    result = RenderResult()
    hops: dict[str, _Hop] = {}
    per_lane: list[tuple[Lane, list[_ServiceState], bool, list[str], set[str]]] = []
    ordered = sorted((lane for lane in lanes if not lane.deleting), key=lambda lane: lane.name)
    for lane in ordered:
        wanted = set(lane.outputs if lane.outputs is not None else options.outputs)
        notes: list[str] = []
        for output in sorted(wanted):
            if available is not None and output not in available:
                notes.append(f"output {output}: its API is not served by this cluster")
        outputs = wanted if available is None else wanted & available
        states = _states(lane, inventory)
        missing = [s for s in states if s.fallback in (names.FALLBACK_NO_SERVICE, names.FALLBACK_NO_VERSION)]
        blocked = lane.mode == names.MODE_STRICT and bool(missing)
        if not blocked:
            for state in states:
                if state.base is None or state.app is None:
                    continue
                hop = hops.setdefault(state.name, _Hop(state.app, state.base))
                hop.owners[lane.name] = lane.owner_reference()
                hop.baselines.setdefault(lane.baseline, state.app.versions.get(lane.baseline))
                hop.baseline = hop.baseline or lane.baseline
                if state.version is not None:
                    hop.versions[lane.name] = state.version
                hop.active[lane.name] = state.active
                for output in outputs:
                    hop.wants.setdefault(output, []).append(lane.name)
                if names.OUTPUT_EAST_WEST in outputs:
                    hop.east_west.extend(lane.east_west or options.east_west)
            if names.OUTPUT_EAST_WEST in outputs and not (lane.east_west or options.east_west):
                notes.append("output EastWest: no gateway (set spec.eastWest.parentRefs or the controller default)")
        per_lane.append((lane, states, blocked, notes, outputs))

    built: dict[tuple[str, str], JSON] = {}
    service_objects: dict[tuple[str, str], list[str]] = {}  # (lane, service) -> object refs
    for service in sorted(hops):
        _render_hop(hops[service], inventory.namespace, options, built, service_objects)
    lane_objects: dict[str, list[str]] = {}
    for lane, states, blocked, notes, outputs in per_lane:
        if blocked or names.OUTPUT_GATEWAY not in outputs or not lane.parent_refs or lane.entry is None:
            if (
                not blocked
                and names.OUTPUT_GATEWAY in outputs
                and not lane.parent_refs
                and (lane.match or lane.percent)
            ):
                notes.append("output GatewayAPI: no spec.gateway, so no edge route colors requests")
            continue
        route, note = _edge_route(lane, states, hops, inventory.namespace, options)
        if note:
            notes.append(note)
        if route is not None:
            built[("HTTPRoute", route["metadata"]["name"])] = route
            lane_objects.setdefault(lane.name, []).append(f"HTTPRoute/{route['metadata']['name']}")
    for lane, states, blocked, notes, _ in per_lane:
        for state in states:
            state.objects = sorted(service_objects.get((lane.name, state.name), []))
        status = _status(lane, states, blocked, notes, sorted(lane_objects.get(lane.name, [])), options)
        result.statuses[lane.name] = status
        result.events.extend(_events(lane, states, blocked))
    kind_order = {"Service": 0, "DestinationRule": 1, "VirtualService": 2, "HTTPRoute": 3}
    result.objects = [built[k] for k in sorted(built, key=lambda k: (kind_order.get(k[0], 9), k[1]))]
    return result


def render_lane(lane: Lane, inventory: Inventory, options: RenderOptions | None = None) -> RenderResult:
    """The one-Lane view: what ``lane`` alone would generate in its namespace."""
    return render([lane], inventory, options)


# --- states -----------------------------------------------------------------------------------------------------


def _states(lane: Lane, inventory: Inventory) -> list[_ServiceState]:
    group = list(lane.services) if lane.services is not None else sorted(inventory.apps)
    states = []
    for service in group:
        app = inventory.apps.get(service)
        base = app.service if app else None
        state = _ServiceState(service, app, base, app.versions.get(lane.name) if app else None)
        if app is None:
            state.fallback = names.FALLBACK_NO_SERVICE
            state.message = f"no pods labeled {names.LABEL_APP}={service}"
        elif base is None:
            state.fallback = names.FALLBACK_NO_SERVICE
            state.message = f"no Service selects the pods of {service}"
        elif state.version is None:
            state.fallback = names.FALLBACK_NO_VERSION
            state.message = f"no pods of {service} in lane {lane.name}: served by {lane.baseline}"
        else:
            state.lane_service = names.object_name(base.name, lane.name)
            state.ready = inventory.ready_endpoints(state.lane_service)
            if state.ready > 0:
                state.active = True
            elif lane.mode == names.MODE_STRICT:
                state.active = True
                state.fallback = ""
                state.message = f"no ready endpoints in lane {lane.name} (Strict: requests are not sent elsewhere)"
            else:
                state.fallback = names.FALLBACK_NO_READY
                state.message = f"no ready endpoints in lane {lane.name}: served by {lane.baseline} until ready"
        if app is not None and app.other_services and base is not None:
            extra = ", ".join(app.other_services)
            state.message = (state.message + "; " if state.message else "") + (
                f"also selected by Service(s) {extra}: only {base.name} is routed"
            )
        if state.fallback and base is not None:
            state.ready = inventory.ready_endpoints(names.object_name(base.name, lane.baseline))
        states.append(state)
    return states


# --- per-service (hop) objects ----------------------------------------------------------------------------------


def _render_hop(
    hop: _Hop,
    namespace: str,
    options: RenderOptions,
    built: dict[tuple[str, str], JSON],
    service_objects: dict[tuple[str, str], list[str]],
) -> None:
    base, app = hop.base, hop.app
    all_lanes = sorted(hop.owners)

    def note(kind: str, name: str, lanes: Iterable[str]) -> None:
        for lane in lanes:
            service_objects.setdefault((lane, app.name), []).append(f"{kind}/{name}")

    def owners(lanes: Iterable[str]) -> list[JSON]:
        return [hop.owners[lane] for lane in sorted(set(lanes))]

    # Per-lane Services: every baseline (owned by all lanes of the hop) and every lane with pods.
    lane_services: dict[str, str] = {}
    for lane_name in sorted({*hop.baselines, *hop.versions}):
        name = names.object_name(base.name, lane_name)
        lane_services[lane_name] = name
        users = [lane for lane in all_lanes if lane == lane_name] if lane_name in hop.versions else []
        users += [lane for lane in all_lanes if lane_name in hop.baselines and lane not in users]
        meta = objects.metadata(name, namespace, owners(users), app=app.name, lane=lane_name)
        built[("Service", name)] = objects.lane_service(meta, base.selector, lane_name, base.ports)
        note("Service", name, users)

    baseline = hop.baseline
    host = fqdn(base.name, namespace, options.cluster_domain)
    routed = [lane for lane in sorted(hop.versions) if hop.active.get(lane)][:MAX_HOP_LANES]

    istio = hop.wants.get(names.OUTPUT_ISTIO, [])
    if istio:
        name = names.object_name(base.name, "lanes")
        subsets: dict[str, float] = {}
        for lane_name in [baseline, *sorted(lane for lane in hop.versions if lane in istio)]:
            version = hop.versions.get(lane_name) or app.versions.get(lane_name)
            subsets[lane_name] = version.warmup if version else 0.0
        meta = objects.metadata(name, namespace, owners(istio), app=app.name)
        built[("DestinationRule", name)] = objects.destination_rule(meta, host, subsets)
        meta = objects.metadata(name, namespace, owners(istio), app=app.name)
        lanes_in = [lane for lane in routed if lane in istio]
        built[("VirtualService", name)] = objects.virtual_service(meta, host, options.tag_header, lanes_in, baseline)
        note("DestinationRule", name, istio)
        note("VirtualService", name, istio)

    gamma = hop.wants.get(names.OUTPUT_GAMMA, [])
    if gamma:
        ports = base.port_numbers()
        for port in ports:
            name = names.object_name(base.name, "lanes", "mesh", *([str(port)] if len(ports) > 1 else []))
            rules = objects.lane_rules(
                options.tag_header,
                {lane: lane_services[lane] for lane in routed if lane in gamma},
                lane_services[baseline],
                port,
            )
            parent = objects.service_parent(base.name, port if len(ports) > 1 else None)
            meta = objects.metadata(name, namespace, owners(gamma), app=app.name)
            built[("HTTPRoute", name)] = objects.http_route(meta, [parent], rules)
            note("HTTPRoute", name, gamma)

    east_west = hop.wants.get(names.OUTPUT_EAST_WEST, [])
    if east_west and hop.east_west:
        name = names.object_name(base.name, "lanes", "eastwest")
        port = _hop_port(base)
        rules = objects.lane_rules(
            options.tag_header,
            {lane: lane_services[lane] for lane in routed if lane in east_west},
            lane_services[baseline],
            port,
        )
        short = base.name
        hostnames = [short, f"{short}.{namespace}", f"{short}.{namespace}.svc", host]
        meta = objects.metadata(name, namespace, owners(east_west), app=app.name)
        built[("HTTPRoute", name)] = objects.http_route(meta, objects.gateway_parents(hop.east_west), rules, hostnames)
        note("HTTPRoute", name, east_west)


# --- the edge ---------------------------------------------------------------------------------------------------


def _edge_route(
    lane: Lane, states: Sequence[_ServiceState], hops: Mapping[str, _Hop], namespace: str, options: RenderOptions
) -> tuple[JSON | None, str]:
    assert lane.entry is not None
    entry = next((s for s in states if s.name == lane.entry.service), None)
    if entry is None or entry.base is None:
        return None, f"entry service {lane.entry.service}: no Service, so no edge route"
    port, problem = _port_of(entry.base, lane.entry.port)
    if port is None:
        return None, f"entry: {problem}"
    baseline = names.object_name(entry.base.name, lane.baseline)
    target = entry.lane_service if entry.active else baseline
    tag = options.tag_header
    rules: list[JSON] = []
    if lane.match:
        rules.append(
            {
                "matches": [objects.route_match(rule) for rule in lane.match],
                "filters": [objects.set_tag(tag, lane.name)],
                "backendRefs": [objects.backend(target, port)],
            }
        )
    catch_all: JSON = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    strip = [objects.remove_tag(tag)] if lane.strip_client_tag else []
    if lane.percent <= 0:
        if strip:
            catch_all["filters"] = strip
        catch_all["backendRefs"] = [objects.backend(baseline, port)]
    else:
        # The tag is set on the lane's share only: backendRef-level filters (Gateway API extended support).
        refs = [objects.backend(target, port, lane.percent, [objects.set_tag(tag, lane.name)])]
        if lane.percent < 100:
            refs.append(objects.backend(baseline, port, 100 - lane.percent, strip or None))
        catch_all["backendRefs"] = refs
    rules.append(catch_all)
    name = names.object_name(lane.name, "edge")
    meta = objects.metadata(name, namespace, [lane.owner_reference()], app=entry.name, lane=lane.name)
    parents = objects.gateway_parents(lane.parent_refs)
    return objects.http_route(meta, parents, rules, lane.hostnames), ""


# --- status and events ------------------------------------------------------------------------------------------


def condition(
    previous: Mapping[str, Any], kind: str, status: bool, reason: str, message: str, generation: int, now: str
) -> JSON:
    """A status condition; its ``lastTransitionTime`` is kept from ``previous`` (a status) while the status holds."""
    value = "True" if status else "False"
    old = next((c for c in previous.get("conditions") or () if isinstance(c, dict) and c.get("type") == kind), None)
    since = now
    if old is not None and old.get("status") == value and old.get("lastTransitionTime"):
        since = old["lastTransitionTime"]
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def _condition(lane: Lane, kind: str, status: bool, reason: str, message: str, options: RenderOptions) -> JSON:
    return condition(lane.status, kind, status, reason, message, lane.generation, options.now)


def _status(
    lane: Lane,
    states: Sequence[_ServiceState],
    blocked: bool,
    notes: Sequence[str],
    edge_objects: Sequence[str],
    options: RenderOptions,
) -> JSON:
    in_lane = [s for s in states if s.version is not None and not s.fallback]
    falling = [s for s in states if s.fallback == names.FALLBACK_NO_READY]
    unready_strict = [s for s in states if s.version is not None and s.ready == 0 and not s.fallback]
    services = []
    for state in states:
        served_by = lane.name if state.active and not blocked else lane.baseline
        entry: JSON = {"name": state.name, "lane": served_by, "readyEndpoints": state.ready}
        if blocked and not state.fallback and state.version is not None:
            entry["fallback"] = "LaneBlocked"
        elif state.fallback:
            entry["fallback"] = state.fallback
        if state.message:
            entry["message"] = state.message[:512]
        if state.objects and not blocked:
            entry["objects"] = list(state.objects)
        services.append(entry)
    missing = [s.name for s in states if s.fallback in (names.FALLBACK_NO_SERVICE, names.FALLBACK_NO_VERSION)]
    accepted = _condition(lane, "Accepted", True, "Rendered", "the spec is valid", options)
    if blocked:
        ready = _condition(
            lane,
            "Ready",
            False,
            "MissingServices",
            f"Strict: no version in lane {lane.name} of {', '.join(missing)}; nothing is generated for this lane",
            options,
        )
    elif unready_strict:
        ready = _condition(
            lane,
            "Ready",
            False,
            "NoReadyEndpoints",
            f"no ready endpoints in lane {lane.name} for {', '.join(s.name for s in unready_strict)}",
            options,
        )
    else:
        summary = f"{len(in_lane)} of {len(states)} service(s) served in lane {lane.name}"
        if falling:
            summary += f"; {', '.join(s.name for s in falling)} fall back to {lane.baseline} (no ready endpoints)"
        ready = _condition(lane, "Ready", True, "Routed", summary, options)
    problems = []
    if falling:
        problems.append(f"falling back to {lane.baseline}: {', '.join(s.name for s in falling)}")
    if unready_strict:
        problems.append(f"no ready endpoints: {', '.join(s.name for s in unready_strict)}")
    problems.extend(notes)
    if problems:
        degraded = _condition(
            lane, "Degraded", True, "Fallback" if falling else "Incomplete", "; ".join(problems), options
        )
    else:
        degraded = _condition(lane, "Degraded", False, "AsDesigned", "every lane version is ready", options)
    status: JSON = {
        "observedGeneration": lane.generation,
        "conditions": [accepted, ready, degraded],
        "inLane": f"{0 if blocked else len(in_lane)}/{len(states)}",
        "services": services,
    }
    if edge_objects:
        status["objects"] = list(edge_objects)
    return status


def invalid_status(lane_obj: Mapping[str, Any], message: str, now: str) -> JSON:
    """The status of a Lane that cannot be rendered (only reachable when the CRD's validation is older or
    bypassed): Accepted=False with the reason, nothing generated."""
    meta = lane_obj.get("metadata") or {}
    raw_generation = meta.get("generation")
    generation = raw_generation if isinstance(raw_generation, int) else 0
    raw_status = lane_obj.get("status")
    previous: Mapping[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    return {
        "observedGeneration": generation,
        "conditions": [
            condition(previous, "Accepted", False, "Invalid", message, generation, now),
            condition(previous, "Ready", False, "Invalid", "nothing is generated for an invalid Lane", generation, now),
            condition(previous, "Degraded", True, "Invalid", message, generation, now),
        ],
        "inLane": "0/0",
        "services": [],
    }


def _events(lane: Lane, states: Sequence[_ServiceState], blocked: bool) -> list[LaneEvent]:
    """Transitions against the Lane's last status: a service that started or stopped falling back because of
    its endpoints, and the lane becoming blocked (Strict)."""
    before = {s.get("name"): s for s in lane.status.get("services") or () if isinstance(s, dict) and s.get("name")}
    if not before:
        return []
    events = []
    for state in states:
        old = before.get(state.name)
        if old is None:
            continue
        was = old.get("fallback") or ""
        now = state.fallback
        if now == names.FALLBACK_NO_READY and was != names.FALLBACK_NO_READY:
            events.append(
                LaneEvent(
                    lane.name,
                    "LaneFallback",
                    f"{state.name}: lane {lane.name} has no ready endpoints; its requests go to {lane.baseline}",
                    True,
                )
            )
        elif was == names.FALLBACK_NO_READY and not now and state.active:
            events.append(
                LaneEvent(
                    lane.name,
                    "LaneRestored",
                    f"{state.name}: lane {lane.name} has {state.ready} ready endpoint(s); its requests are routed "
                    "in the lane again",
                    False,
                )
            )
    was_blocked = any(s.get("fallback") == "LaneBlocked" for s in before.values())
    if blocked and not was_blocked:
        missing = ", ".join(
            s.name for s in states if s.fallback in (names.FALLBACK_NO_SERVICE, names.FALLBACK_NO_VERSION)
        )
        events.append(LaneEvent(lane.name, "LaneBlocked", f"Strict lane {lane.name} lacks {missing}", True))
    return events
