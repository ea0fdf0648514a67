"""Builders of the generated objects, one function per kind: plain JSON, exactly as it is applied.

Every field the API server would default is written out (HTTPRoute ``group``/``kind``/``weight``, match ``type``,
the catch-all's path match), so the live object is a superset of what is rendered and "nothing changed" is a
plain comparison (see compare.py), never a diff that fights the server's defaults.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from webhook.controller.routing import names
from webhook.controller.routing.spec import MatchRule, ParentRef, ValueMatch

JSON = dict[str, Any]

_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def regex_escape(text: str) -> str:
    """``text`` as a literal in RE2, Go regexp and ECMAScript alike (only punctuation is escaped)."""
    return _SPECIAL.sub(r"\\\1", text)


def baggage_regex(lane: str) -> str:
    """Matches a W3C ``baggage`` header that carries ``lanes.lane=<lane>`` among any other entries (with or
    without properties). Anchored, so it means the same to full-match engines (Envoy) and search ones (Traefik)."""
    key = regex_escape(names.BAGGAGE_KEY)
    return rf"^(.*,)?[ \t]*{key}[ \t]*=[ \t]*{regex_escape(lane)}[ \t]*(;[^,]*)?(,.*)?$"


def cookie_regex(cookies: Sequence[ValueMatch]) -> str:
    """Matches a ``Cookie`` header holding every cookie of ``cookies`` (in any order): Gateway API has no cookie
    match, and names each header once per match, so several cookies become one expression with one
    alternative per order (at most 3 cookies per rule: 6 alternatives)."""
    alternatives = []
    for order in itertools.permutations(cookies):
        parts = [rf"[ \t]*{regex_escape(c.name)}={regex_escape(c.value)}[ \t]*" for c in order]
        alternatives.append("(.*;)?" + ";(.*;)?".join(parts) + "(;.*)?")
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    return f"^{body}$"


def metadata(
    name: str,
    namespace: str,
    owners: Iterable[Mapping[str, Any]],
    *,
    app: str | None = None,
    lane: str | None = None,
) -> JSON:
    owner_list = sorted(owners, key=lambda o: str(o["name"]))
    labels = {names.LABEL_GENERATED: "true", names.LABEL_MANAGED_BY: names.MANAGED_BY}
    if app:
        labels[names.LABEL_APP] = app
    if lane:
        labels[names.LABEL_LANE] = lane
    meta: JSON = {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "annotations": {names.ANN_LANES: ",".join(str(o["name"]) for o in owner_list)},
    }
    refs = [dict(o) for o in owner_list if o.get("uid")]
    if refs:
        meta["ownerReferences"] = refs
    return meta


# --- core -------------------------------------------------------------------------------------------------------


def lane_service(meta: JSON, selector: Mapping[str, str], lane: str, ports: Sequence[Mapping[str, Any]]) -> JSON:
    """``<service>-<lane>``: the base Service's selector pinned to one lane, same ports."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": {**dict(selector), names.LABEL_LANE: lane},
            "ports": [dict(p) for p in ports],
        },
    }


# --- Gateway API --------------------------------------------------------------------------------------------------


def backend(name: str, port: int, weight: int = 1, filters: list[JSON] | None = None) -> JSON:
    ref: JSON = {"group": "", "kind": "Service", "name": name, "port": port, "weight": weight}
    if filters:
        ref["filters"] = filters
    return ref


def set_tag(tag_header: str, lane: str) -> JSON:
    return {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {
            "set": [
                {"name": tag_header, "value": lane},
                {"name": names.BAGGAGE_HEADER, "value": f"{names.BAGGAGE_KEY}={lane}"},
            ]
        },
    }


def remove_tag(tag_header: str) -> JSON:
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": [tag_header, names.BAGGAGE_HEADER]}}


def _prefix() -> JSON:
    return {"type": "PathPrefix", "value": "/"}


def route_match(rule: MatchRule) -> JSON:
    """One Lane match rule as an HTTPRouteMatch (conditions ANDed)."""
    headers = [{"type": h.type, "name": h.name, "value": h.value} for h in rule.headers]
    if rule.cookies:
        headers.append({"type": "RegularExpression", "name": "Cookie", "value": cookie_regex(rule.cookies)})
    match: JSON = {"path": _prefix()}
    if headers:
        match["headers"] = headers
    if rule.query_params:
        match["queryParams"] = [{"type": q.type, "name": q.name, "value": q.value} for q in rule.query_params]
    return match


def tag_matches(tag_header: str, lane: str) -> list[JSON]:
    """A request is in ``lane`` when it carries the tag header OR the baggage entry (two ORed matches)."""
    return [
        {"path": _prefix(), "headers": [{"type": "Exact", "name": tag_header, "value": lane}]},
        {
            "path": _prefix(),
            "headers": [{"type": "RegularExpression", "name": "baggage", "value": baggage_regex(lane)}],
        },
    ]


def http_route(meta: JSON, parent_refs: list[JSON], rules: list[JSON], hostnames: Sequence[str] = ()) -> JSON:
    spec: JSON = {"parentRefs": parent_refs}
    if hostnames:
        spec["hostnames"] = list(hostnames)
    spec["rules"] = rules
    return {"apiVersion": names.GATEWAY_VERSION, "kind": "HTTPRoute", "metadata": meta, "spec": spec}


def service_parent(name: str, port: int | None) -> JSON:
    ref: JSON = {"group": "", "kind": "Service", "name": name}
    if port is not None:
        ref["port"] = port
    return ref


def gateway_parents(refs: Iterable[ParentRef]) -> list[JSON]:
    seen: dict[tuple[Any, ...], JSON] = {}
    for ref in refs:
        seen.setdefault((ref.namespace, ref.name, ref.section_name, ref.port), ref.as_json())
    return list(seen.values())


def lane_rules(tag_header: str, lanes: Mapping[str, str], baseline: str, port: int) -> list[JSON]:
    """Per-hop HTTPRoute rules: one per lane (tag -> ``lanes[lane]``, the lane's Service), then the default."""
    rules = [
        {"matches": tag_matches(tag_header, lane), "backendRefs": [backend(svc, port)]} for lane, svc in lanes.items()
    ]
    rules.append({"matches": [{"path": _prefix()}], "backendRefs": [backend(baseline, port)]})
    return rules


# --- Istio --------------------------------------------------------------------------------------------------------


def destination_rule(meta: JSON, host: str, subsets: Mapping[str, float]) -> JSON:
    """One subset per lane (label ``lanes.io/lane``); a lane whose pods warm up gets Envoy slow start."""
    items = []
    for lane, warmup in subsets.items():
        subset: JSON = {"name": lane, "labels": {names.LABEL_LANE: lane}}
        if warmup > 0:
            subset["trafficPolicy"] = {"loadBalancer": {"warmupDurationSecs": f"{round(warmup)}s"}}
        items.append(subset)
    return {
        "apiVersion": names.ISTIO_VERSION,
        "kind": "DestinationRule",
        "metadata": meta,
        "spec": {"host": host, "subsets": items},
    }


def virtual_service(meta: JSON, host: str, tag_header: str, lanes: Sequence[str], baseline: str) -> JSON:
    http = []
    for lane in lanes:
        http.append(
            {
                "name": f"lane-{lane}",
                "match": [
                    {"headers": {tag_header: {"exact": lane}}},
                    {"headers": {names.BAGGAGE_HEADER: {"regex": baggage_regex(lane)}}},
                ],
                "route": [{"destination": {"host": host, "subset": lane}}],
            }
        )
    http.append({"name": "baseline", "route": [{"destination": {"host": host, "subset": baseline}}]})
    return {
        "apiVersion": names.ISTIO_VERSION,
        "kind": "VirtualService",
        "metadata": meta,
        "spec": {"hosts": [host], "http": http},
    }
