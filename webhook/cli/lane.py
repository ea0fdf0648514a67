"""``lanes lane create|list|describe|delete``: Lanes in a cluster, without writing YAML.

``create`` builds the Lane from flags (``--match header:x-user-id=100`` is one rule; several conditions of one
rule are comma-separated: ``--match header:x-env=test,cookie:canary=always``) and lets the API server validate
it (the CRD's schema and CEL rules answer with the field and the reason, printed as is). ``describe`` shows the
status per service and the generated objects; with ``--probe URL`` it also sends one request (with the
``--probe-header`` the edge colors by) and walks the sample apps' echo hop by hop, showing where the lane
arrived and where it was lost (an app that forwards neither ``x-lane`` nor ``baggage``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from webhook.cli.errors import EXIT_OK, UserError

HELP = "create, list, describe and delete Lanes (lane routing) in a cluster"
_KINDS = {"header": "headers", "cookie": "cookies", "query": "queryParams"}


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("lane", help=HELP, description=HELP)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    def common(sub: argparse.ArgumentParser, namespaced: bool = True) -> None:
        sub.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config)")
        if namespaced:
            sub.add_argument("-n", "--namespace", default="default", help="(default: %(default)s)")

    create = verbs.add_parser(
        "create",
        help="create a Lane",
        epilog=(
            "example:\n  lanes lane create gray -n shop --services a,b,c --match header:x-user-id=100 \\\n"
            "    --entry a:8080 --gateway gateways/edge --host base.example.com --percent 10"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create.add_argument("name", help="the lane (a DNS label): pods labeled lanes.io/lane=NAME are its versions")
    common(create)
    create.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="RULE",
        help="header:NAME=VALUE, header:NAME~=REGEX, cookie:NAME=VALUE, query:NAME=VALUE; comma-separated "
        "conditions are ANDed; repeat --match for alternatives",
    )
    create.add_argument("--services", metavar="A,B,C", help="lanes.io/app values of the lane group (default: all)")
    create.add_argument("--entry", metavar="SERVICE[:PORT]", help="the service the edge routes to")
    create.add_argument("--gateway", action="append", default=[], metavar="[NAMESPACE/]NAME", help="edge Gateway")
    create.add_argument("--host", action="append", default=[], metavar="HOSTNAME", help="edge hostname (repeatable)")
    create.add_argument("--percent", type=int, default=0, help="share of unmatched edge requests sent into the lane")
    create.add_argument("--mode", choices=["Permissive", "Strict"], default="Permissive")
    create.add_argument("--baseline", default="base", help="the lane requests fall back to (default: %(default)s)")
    create.add_argument("--outputs", metavar="LIST", help="GatewayAPI,Istio,GAMMA,EastWest (default: the controller's)")
    create.add_argument("--east-west-gateway", action="append", default=[], metavar="[NAMESPACE/]NAME")
    create.add_argument("--keep-client-tag", action="store_true", help="do not strip client-sent x-lane/baggage")
    create.add_argument("--dry-run", action="store_true", help="print the Lane as YAML instead of creating it")

    listing = verbs.add_parser("list", help="list Lanes")
    common(listing)
    listing.add_argument("-A", "--all-namespaces", action="store_true")

    describe = verbs.add_parser("describe", help="show a Lane's status per service and its generated objects")
    describe.add_argument("name")
    common(describe)
    describe.add_argument("--probe", metavar="URL", help="send one request and show, per hop, whether the lane arrived")
    describe.add_argument("--probe-host", metavar="HOST", help="Host header of the probe (the edge hostname)")
    describe.add_argument(
        "--probe-header", action="append", default=[], metavar="NAME=VALUE", help="header of the probe (repeatable)"
    )

    delete = verbs.add_parser("delete", help="delete a Lane (and, through its finalizer, all it generated)")
    delete.add_argument("name")
    common(delete)
    delete.add_argument("--wait", action="store_true", help="wait until the Lane and its objects are gone")
    delete.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits (default: %(default)s)")
    return parser


# --- building a Lane from flags -----------------------------------------------------------------------------------


def parse_rule(text: str) -> dict[str, Any]:
    """One ``--match``: ``kind:NAME=VALUE`` conditions, comma-separated (ANDed)."""
    rule: dict[str, list[dict[str, str]]] = {}
    for part in text.split(","):
        kind, sep, rest = part.partition(":")
        if not sep or kind.strip() not in _KINDS:
            raise UserError(f"--match {text!r}: expected header:NAME=VALUE, cookie:NAME=VALUE or query:NAME=VALUE")
        regex = "~=" in rest and kind.strip() != "cookie"
        name, sep, value = rest.partition("~=" if regex else "=")
        if not sep or not name.strip():
            raise UserError(f"--match {text!r}: {part!r} needs NAME=VALUE")
        item = {"name": name.strip(), "value": value}
        if kind.strip() != "cookie":
            item["type"] = "RegularExpression" if regex else "Exact"
        rule.setdefault(_KINDS[kind.strip()], []).append(item)
    return rule


def _ref(text: str, flag: str) -> dict[str, str]:
    namespace, sep, name = text.rpartition("/")
    if not name or (sep and not namespace):
        raise UserError(f"{flag} {text!r}: expected [NAMESPACE/]NAME")
    return {"name": name, **({"namespace": namespace} if namespace else {})}


def build_lane(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {"baseline": args.baseline, "mode": args.mode}
    if args.services:
        spec["services"] = [s.strip() for s in args.services.split(",") if s.strip()]
    if args.match:
        spec["match"] = [parse_rule(text) for text in args.match]
    if args.percent:
        spec["percent"] = args.percent
    if args.entry:
        service, sep, port = args.entry.partition(":")
        entry: dict[str, Any] = {"service": service}
        if sep:
            if not port.isdigit():
                raise UserError(f"--entry {args.entry!r}: the port must be a number")
            entry["port"] = int(port)
        spec["entry"] = entry
    if args.gateway or args.host:
        if not args.gateway:
            raise UserError("--host needs --gateway (the Gateway the edge route attaches to)")
        spec["gateway"] = {"parentRefs": [_ref(g, "--gateway") for g in args.gateway]}
        if args.host:
            spec["gateway"]["hostnames"] = list(args.host)
        if args.keep_client_tag:
            spec["gateway"]["stripClientTag"] = False
    if args.east_west_gateway:
        spec["eastWest"] = {"parentRefs": [_ref(g, "--east-west-gateway") for g in args.east_west_gateway]}
    if args.outputs:
        spec["outputs"] = [o.strip() for o in args.outputs.split(",") if o.strip()]
    return {
        "apiVersion": "lanes.io/v1alpha1",
        "kind": "Lane",
        "metadata": {"name": args.name, "namespace": args.namespace},
        "spec": spec,
    }


# --- cluster access ----------------------------------------------------------------------------------------------


def _kube(args: argparse.Namespace) -> Any:
    from webhook.cli.controller import api_client
    from webhook.controller.settings import SettingsError
    from webhook.kube.client import Kube

    try:
        return Kube(api_client(args.kubeconfig, in_cluster=False))
    except SettingsError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # an unreadable kubeconfig: one line
        raise UserError(f"cannot load the kubeconfig: {exc}") from None


def _path(namespace: str | None, name: str | None = None) -> str:
    from webhook.controller.routing import names
    from webhook.kube.client import path_segment

    base = f"/apis/{names.API_VERSION}"
    path = f"{base}/namespaces/{path_segment(namespace)}/{names.PLURAL}" if namespace else f"{base}/{names.PLURAL}"
    return f"{path}/{path_segment(name)}" if name else path


def _call(action: Any, what: str) -> Any:
    from webhook.kube.client import KubeError

    try:
        return action()
    except KubeError as exc:
        if exc.status == 404 and exc.api_reason != "NotFound":
            raise UserError(
                f"{what}: the Lane API (lanes.io/v1alpha1) is not installed: apply charts/lanes/crds/"
            ) from None
        raise UserError(f"{what}: {exc.message}") from None


def run(args: argparse.Namespace) -> int:
    return {"create": _create, "list": _list, "describe": _describe, "delete": _delete}[args.verb](args)


def _create(args: argparse.Namespace) -> int:
    lane = build_lane(args)
    if args.dry_run:
        from webhook.injection.manifests import dump_documents

        sys.stdout.write(dump_documents([lane]))
        return EXIT_OK
    kube = _kube(args)
    _call(lambda: kube.create(_path(args.namespace), lane), f"creating Lane {args.namespace}/{args.name}")
    print(f"lane.lanes.io/{args.name} created")
    return EXIT_OK


def _age(stamp: str | None) -> str:
    if not stamp:
        return "?"
    try:
        then = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _condition(lane: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (lane.get("status") or {}).get("conditions") or () if c.get("type") == kind), {})


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _list(args: argparse.Namespace) -> int:
    kube = _kube(args)
    namespace = None if args.all_namespaces else args.namespace
    items = _call(lambda: kube.get(_path(namespace)), "listing Lanes").get("items") or []
    if not items:
        print("No Lanes found" + ("" if args.all_namespaces else f" in namespace {args.namespace}") + ".")
        return EXIT_OK
    header = (["NAMESPACE"] if args.all_namespaces else []) + ["NAME", "MODE", "SERVICES", "READY", "AGE"]
    rows = [header]
    for lane in sorted(items, key=lambda x: (x["metadata"].get("namespace"), x["metadata"]["name"])):
        meta = lane["metadata"]
        row = [meta.get("namespace", "")] if args.all_namespaces else []
        row += [
            meta["name"],
            str((lane.get("spec") or {}).get("mode") or "Permissive"),
            str((lane.get("status") or {}).get("inLane") or "-"),
            str(_condition(lane, "Ready").get("status") or "Unknown"),
            _age(meta.get("creationTimestamp")),
        ]
        rows.append(row)
    print(_table(rows))
    return EXIT_OK


def _describe(args: argparse.Namespace) -> int:
    kube = _kube(args)
    lane = _call(lambda: kube.get(_path(args.namespace, args.name)), f"reading Lane {args.namespace}/{args.name}")
    spec = lane.get("spec") or {}
    status = lane.get("status") or {}
    print(f"Name:       {args.name}")
    print(f"Namespace:  {args.namespace}")
    print(f"Mode:       {spec.get('mode', 'Permissive')}   Baseline: {spec.get('baseline', 'base')}")
    print(f"Services:   {', '.join(spec.get('services') or []) or '(every app in the namespace)'}")
    for index, rule in enumerate(spec.get("match") or (), 1):
        parts = [
            f"{k[:-1] if k != 'queryParams' else 'query'} {i['name']}={i['value']}"
            for k in _KINDS.values()
            for i in rule.get(k) or ()
        ]
        print(f"Match {index}:    {' AND '.join(parts)}")
    if spec.get("percent"):
        print(f"Percent:    {spec['percent']}% of unmatched requests")
    if spec.get("entry"):
        print(f"Entry:      {spec['entry'].get('service')}:{spec['entry'].get('port', '')}")
    if "observedGeneration" not in status:
        print("\nStatus:     not reconciled yet (is the controller running with --lanes?)")
    else:
        print("\nConditions:")
        rows = [["TYPE", "STATUS", "REASON", "MESSAGE"]]
        rows += [
            [c.get("type", ""), c.get("status", ""), c.get("reason", ""), c.get("message", "")]
            for c in status.get("conditions") or ()
        ]
        print(_indent(_table(rows)))
        print("\nServices:")
        rows = [["SERVICE", "SERVED BY", "READY", "FALLBACK", "MESSAGE"]]
        rows += [
            [
                s.get("name", ""),
                s.get("lane", ""),
                str(s.get("readyEndpoints", 0)),
                s.get("fallback", "") or "-",
                s.get("message", ""),
            ]
            for s in status.get("services") or ()
        ]
        print(_indent(_table(rows)))
        generated = sorted(
            {o for s in status.get("services") or () for o in s.get("objects") or ()} | set(status.get("objects") or ())
        )
        print("\nGenerated objects:")
        print(_indent("\n".join(generated) or "(none)"))
    if args.probe:
        print("\nProbe (per hop: did the lane arrive?):")
        print(_indent(probe(args.probe, args.probe_host, args.probe_header, args.name)))
    return EXIT_OK


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def probe(url: str, host: str | None, headers: list[str], lane: str) -> str:
    """One request through the edge; the sample apps' echo (service, lane, received tag) read hop by hop."""
    request = urllib.request.Request(url)
    if host:
        request.add_header("Host", host)
    for item in headers:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--probe-header {item!r}: expected NAME=VALUE")
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"probe failed: {exc}"
    rows = [["HOP", "SERVICE", "SERVED BY", "TAG RECEIVED", "LANE ARRIVED"]]

    def walk(node: Any, depth: int) -> None:
        if not isinstance(node, dict):
            return
        if "error" in node and "service" not in node:
            rows.append([str(depth), "?", "-", "-", f"call failed: {node['error']}"])
            return
        received = node.get("received") or {}
        tag = received.get("x-lane") or ""
        baggage = received.get("baggage") or ""
        carried = tag == lane or f"lanes.lane={lane}" in baggage.replace(" ", "")
        shown = tag or (baggage and f"baggage: {baggage}") or "(none)"
        rows.append([str(depth), str(node.get("service")), str(node.get("lane")), shown, "yes" if carried else "NO"])
        for call in node.get("calls") or ():
            walk(call, depth + 1)

    walk(body, 1)
    return _table(rows)


def _delete(args: argparse.Namespace) -> int:
    from webhook.kube.client import KubeError

    kube = _kube(args)
    path = _path(args.namespace, args.name)
    _call(lambda: kube.delete(path), f"deleting Lane {args.namespace}/{args.name}")
    print(f'lane.lanes.io "{args.name}" deleted')
    if args.wait:
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            try:
                kube.get(path)
            except KubeError as exc:
                if exc.status == 404:
                    return EXIT_OK
            time.sleep(0.2)
        raise UserError(
            f"Lane {args.namespace}/{args.name} still there after {args.timeout:.0f}s (finalizer "
            "lanes.io/generated-objects: is the controller running with --lanes?)"
        )
    return EXIT_OK
