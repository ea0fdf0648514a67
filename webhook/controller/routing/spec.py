"""A ``Lane`` object read into typed, validated data: what the renderer works from.

The API server already rejects bad Lanes at apply time (the CRD's OpenAPI schema and CEL rules, in
charts/lanes/crds/). The same rules are checked here, with the same messages, because Lanes also arrive from
files (``lanes route -f``) and from clusters whose CRD is older than the controller: a bad Lane is reported in
its status (or on the command line), never a stack trace and never half-rendered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.controller.routing import names

HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
HOSTNAME = re.compile(r"(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MATCH_TYPES = ("Exact", "RegularExpression")


class LaneError(ValueError):
    """A Lane that cannot be rendered; the message names the field, as the API server's would."""


@dataclass(frozen=True)
class ValueMatch:
    """One header, cookie or query parameter condition."""

    name: str
    value: str
    type: str = "Exact"


@dataclass(frozen=True)
class MatchRule:
    """Edge coloring: a request matches when every condition holds (a Lane matches when ANY rule does)."""

    headers: tuple[ValueMatch, ...] = ()
    cookies: tuple[ValueMatch, ...] = ()
    query_params: tuple[ValueMatch, ...] = ()


@dataclass(frozen=True)
class ParentRef:
    """A Gateway API parentRef (a Gateway, optionally one listener)."""

    name: str
    namespace: str | None = None
    section_name: str | None = None
    port: int | None = None

    def as_json(self) -> dict[str, Any]:
        ref: dict[str, Any] = {"group": names.GATEWAY_GROUP, "kind": "Gateway", "name": self.name}
        if self.namespace:
            ref["namespace"] = self.namespace
        if self.section_name:
            ref["sectionName"] = self.section_name
        if self.port:
            ref["port"] = self.port
        return ref


@dataclass(frozen=True)
class Entry:
    service: str
    port: int | None = None


@dataclass(frozen=True)
class Lane:
    """One Lane object: its identity, its spec, and the status it had (for transitions)."""

    name: str
    namespace: str
    uid: str = ""
    generation: int = 0
    baseline: str = "base"
    mode: str = names.MODE_PERMISSIVE
    services: tuple[str, ...] | None = None  # None: every app in the namespace
    match: tuple[MatchRule, ...] = ()
    percent: int = 0
    entry: Entry | None = None
    parent_refs: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] = ()
    strip_client_tag: bool = True
    east_west: tuple[ParentRef, ...] = ()
    outputs: tuple[str, ...] | None = None  # None: the controller's default
    deleting: bool = False
    finalizers: tuple[str, ...] = ()
    resource_version: str = ""
    creation: str = ""
    status: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": False,
            "blockOwnerDeletion": True,
        }


def _dict(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LaneError(f"{where}: must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise LaneError(f"{where}: must be a list")
    return value


def _text(value: Any, where: str, *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise LaneError(f"{where}: Required value")
        return ""
    if not isinstance(value, str):
        raise LaneError(f"{where}: must be a string")
    return value


def _values(items: Any, where: str, *, kind: str) -> tuple[ValueMatch, ...]:
    out: list[ValueMatch] = []
    seen: set[str] = set()
    for index, item in enumerate(_list(items, where)):
        at = f"{where}[{index}]"
        item = _dict(item, at)
        name = _text(item.get("name"), f"{at}.name")
        value = _text(item.get("value"), f"{at}.value", required=False)
        kind_of = item.get("type", "Exact")
        if kind == "header" and not HEADER_NAME.fullmatch(name):
            raise LaneError(f"{at}.name: Invalid value: {name!r}: must be a valid HTTP header name")
        if kind == "header" and name.lower() == "cookie":
            raise LaneError(f"{at}.name: Invalid value: 'cookie': use cookies: [{{name, value}}] to match a cookie")
        if kind == "cookie" and not HEADER_NAME.fullmatch(name):
            raise LaneError(f"{at}.name: Invalid value: {name!r}: must be a valid cookie name")
        if kind_of not in MATCH_TYPES or (kind == "cookie" and kind_of != "Exact"):
            allowed = '"Exact"' if kind == "cookie" else '"Exact", "RegularExpression"'
            raise LaneError(f"{at}.type: Unsupported value: {kind_of!r}: supported values: {allowed}")
        if kind_of == "RegularExpression":
            try:
                re.compile(value)
            except re.error as exc:
                raise LaneError(f"{at}.value: Invalid value: {value!r}: not a regular expression: {exc}") from None
        folded = name.lower() if kind != "query" else name
        if folded in seen:
            raise LaneError(f"{at}.name: Duplicate value: {name!r}: a rule names each {kind} once")
        seen.add(folded)
        out.append(ValueMatch(name, value, kind_of))
    return tuple(out)


def _parent_refs(items: Any, where: str) -> tuple[ParentRef, ...]:
    refs = []
    for index, item in enumerate(_list(items, where)):
        at = f"{where}[{index}]"
        item = _dict(item, at)
        port = item.get("port")
        if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
            raise LaneError(f"{at}.port: Invalid value: {port!r}: must be between 1 and 65535")
        refs.append(
            ParentRef(
                _text(item.get("name"), f"{at}.name"),
                _text(item.get("namespace"), f"{at}.namespace", required=False) or None,
                _text(item.get("sectionName"), f"{at}.sectionName", required=False) or None,
                port,
            )
        )
    return tuple(refs)


def parse_lane(obj: Any, *, namespace: str | None = None) -> Lane:
    """The :class:`Lane` in ``obj`` (a ``lanes.io/v1alpha1`` Lane as JSON); :class:`LaneError` if it is invalid."""
    obj = _dict(obj, "Lane")
    meta = _dict(obj.get("metadata"), "metadata")
    name = _text(meta.get("name"), "metadata.name")
    spec = _dict(obj.get("spec"), "spec")
    ns = meta.get("namespace") or namespace or "default"
    where = f"Lane {ns}/{name}"
    try:
        lane = _parse_spec(name, str(ns), meta, spec, obj)
    except LaneError as exc:
        raise LaneError(f"{where}: {exc}") from None
    return lane


def _parse_spec(name: str, namespace: str, meta: dict[str, Any], spec: dict[str, Any], obj: dict[str, Any]) -> Lane:
    if len(name) > 63 or not DNS_LABEL.fullmatch(name):
        raise LaneError(f"metadata.name: Invalid value: {name!r}: a lane name must be a DNS label (a-z, 0-9, -)")
    baseline = _text(spec.get("baseline"), "spec.baseline", required=False) or "base"
    if len(baseline) > 63 or not DNS_LABEL.fullmatch(baseline):
        raise LaneError(f"spec.baseline: Invalid value: {baseline!r}: must be a DNS label (a-z, 0-9, -)")
    if baseline == name:
        raise LaneError(f"metadata.name: Invalid value: {name!r}: a lane cannot be its own baseline")
    mode = spec.get("mode") or names.MODE_PERMISSIVE
    if mode not in (names.MODE_PERMISSIVE, names.MODE_STRICT):
        raise LaneError(f'spec.mode: Unsupported value: {mode!r}: supported values: "Permissive", "Strict"')
    services: tuple[str, ...] | None = None
    if "services" in spec and spec["services"] is not None:
        raw = _list(spec["services"], "spec.services")
        services = tuple(_text(s, f"spec.services[{i}]") for i, s in enumerate(raw))
        if len(set(services)) != len(services):
            raise LaneError("spec.services: Duplicate value: each service is listed once")
    rules = []
    for index, item in enumerate(_list(spec.get("match"), "spec.match")):
        at = f"spec.match[{index}]"
        item = _dict(item, at)
        rule = MatchRule(
            _values(item.get("headers"), f"{at}.headers", kind="header"),
            _values(item.get("cookies"), f"{at}.cookies", kind="cookie"),
            _values(item.get("queryParams"), f"{at}.queryParams", kind="query"),
        )
        if not (rule.headers or rule.cookies or rule.query_params):
            raise LaneError(f"{at}: Invalid value: a match rule needs at least one of headers, cookies, queryParams")
        if len(rule.cookies) > 3:
            raise LaneError(f"{at}.cookies: Too many: {len(rule.cookies)}: must have at most 3 items")
        rules.append(rule)
    percent = spec.get("percent", 0) or 0
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise LaneError(f"spec.percent: Invalid value: {percent!r}: must be an integer between 0 and 100")
    entry = None
    if spec.get("entry") is not None:
        raw_entry = _dict(spec["entry"], "spec.entry")
        port = raw_entry.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
            raise LaneError(f"spec.entry.port: Invalid value: {port!r}: must be between 1 and 65535")
        entry = Entry(_text(raw_entry.get("service"), "spec.entry.service"), port)
        if services is not None and entry.service not in services:
            raise LaneError(f"spec.entry.service: Invalid value: {entry.service!r}: must be one of spec.services")
    gateway = _dict(spec.get("gateway"), "spec.gateway")
    parent_refs = _parent_refs(gateway.get("parentRefs"), "spec.gateway.parentRefs")
    hostnames = tuple(
        _text(h, f"spec.gateway.hostnames[{i}]")
        for i, h in enumerate(_list(gateway.get("hostnames"), "spec.gateway.hostnames"))
    )
    for index, host in enumerate(hostnames):
        if not HOSTNAME.fullmatch(host):
            raise LaneError(f"spec.gateway.hostnames[{index}]: Invalid value: {host!r}: must be a DNS name")
    if gateway and not parent_refs:
        raise LaneError("spec.gateway.parentRefs: Required value: the Gateway(s) the edge routes attach to")
    if parent_refs and entry is None:
        raise LaneError("spec.entry: Required value: the edge routes need the entry service")
    strip = gateway.get("stripClientTag", True)
    if not isinstance(strip, bool):
        raise LaneError("spec.gateway.stripClientTag: must be a boolean")
    east_west = _parent_refs(_dict(spec.get("eastWest"), "spec.eastWest").get("parentRefs"), "spec.eastWest.parentRefs")
    outputs: tuple[str, ...] | None = None
    if spec.get("outputs") is not None:
        outputs = tuple(_list(spec["outputs"], "spec.outputs"))
        for index, output in enumerate(outputs):
            if output not in names.OUTPUTS:
                supported = ", ".join(f'"{o}"' for o in names.OUTPUTS)
                raise LaneError(f"spec.outputs[{index}]: Unsupported value: {output!r}: supported values: {supported}")
        if names.OUTPUT_GATEWAY in outputs and not parent_refs:
            raise LaneError("spec.gateway: Required value: the GatewayAPI output needs spec.gateway and spec.entry")
    if (rules or percent) and not parent_refs and outputs is not None and names.OUTPUT_GATEWAY in outputs:
        raise LaneError("spec.gateway: Required value: match rules and percent color requests at a Gateway")
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    generation = meta.get("generation")
    return Lane(
        name=name,
        namespace=namespace,
        uid=str(meta.get("uid") or ""),
        generation=int(generation) if isinstance(generation, int) else 0,
        baseline=baseline,
        mode=mode,
        services=services,
        match=tuple(rules),
        percent=percent,
        entry=entry,
        parent_refs=parent_refs,
        hostnames=hostnames,
        strip_client_tag=strip,
        east_west=east_west,
        outputs=outputs,
        deleting=bool(meta.get("deletionTimestamp")),
        finalizers=tuple(meta.get("finalizers") or ()),
        resource_version=str(meta.get("resourceVersion") or ""),
        creation=str(meta.get("creationTimestamp") or ""),
        status=status or {},
    )


def parse_outputs(text: str, flag: str = "--outputs") -> tuple[str, ...]:
    """A comma list of outputs (``GatewayAPI,Istio``), as the controller's and ``lanes route``'s flags take it."""
    outputs = tuple(o.strip() for o in text.split(",") if o.strip())
    for output in outputs:
        if output not in names.OUTPUTS:
            raise LaneError(f"{flag}: unknown output {output!r} (one of {', '.join(names.OUTPUTS)})")
    return outputs


def parse_gateway_ref(text: str, flag: str) -> ParentRef:
    """``NAMESPACE/NAME`` of a Gateway, as a flag takes it."""
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name:
        raise LaneError(f"{flag}: expected NAMESPACE/NAME, got {text!r}")
    return ParentRef(name, namespace)
