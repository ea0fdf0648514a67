"""``lanes route``: the Lane reconciler's output, offline: Lanes + workloads + Services in, generated objects out.

Reads manifests like ``lanes inject`` (``-f`` repeatable, directories, ``-``), runs the webhook's own mutation on
every pod template first (so a workload annotated ``lanes.io/lane: gray`` counts as the gray version, exactly as
its pods would be labeled in a cluster), and renders every Lane of the input with the controller's renderer.
Offline there are no EndpointSlices: every lane version counts as ready unless named with ``--not-ready``
(to preview the fallback). The generated objects go to stdout as YAML; one summary line per Lane and service
goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any

from webhook.cli.errors import EXIT_OK, UserError

HELP = "print the objects the controller would generate for the Lanes in manifests (offline)"

_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController")


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "route",
        help=HELP,
        description=(
            "Read Lanes, workloads (Pods, Deployments, StatefulSets, ...) and Services from manifests and print the "
            "Services, HTTPRoutes, DestinationRules and VirtualServices the Lanes controller would generate."
        ),
        epilog=(
            "examples:\n"
            "  lanes route -f lane.yaml -f app/                   # a directory: its *.yaml, *.yml, *.json\n"
            "  lanes route -f lane.yaml -f app/ --not-ready c-gray  # preview the fallback of c in lane gray\n"
            "  lanes route -f all.yaml --outputs GatewayAPI,GAMMA"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="filenames",
        action="append",
        required=True,
        metavar="PATH",
        help="manifest file, directory, or - for stdin; repeatable",
    )
    parser.add_argument("-R", "--recursive", action="store_true", help="also read subdirectories of directories")
    parser.add_argument(
        "-n", "--namespace", default="default", help="namespace of objects that name none (default: %(default)s)"
    )
    parser.add_argument(
        "--outputs",
        default="GatewayAPI,Istio",
        metavar="LIST",
        help="outputs of Lanes that name none: GatewayAPI, Istio, GAMMA, EastWest (default: %(default)s)",
    )
    parser.add_argument(
        "--east-west-gateway", default="", metavar="NAMESPACE/NAME", help="the EastWest output's shared Gateway"
    )
    parser.add_argument("--tag-header", default="x-lane", help="the cluster's tag header (default: %(default)s)")
    parser.add_argument(
        "--not-ready",
        action="append",
        default=[],
        metavar="SERVICE-LANE",
        help="treat this per-lane Service (e.g. c-gray) as having no ready endpoints (repeatable)",
    )
    return parser


def _pod_templates(documents: Iterable[Any], namespace: str) -> list[dict[str, Any]]:
    """One stand-in pod per workload (its injected template's labels and annotations) and the Pods themselves."""
    pods = []
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        meta = _as_dict(doc.get("metadata"))
        ns = meta.get("namespace") or namespace
        kind = doc.get("kind")
        spec = _as_dict(doc.get("spec"))
        template: Any = None
        if kind == "Pod":
            template = doc
        elif kind in _TEMPLATE_KINDS:
            template = spec.get("template")
        elif kind == "CronJob":
            template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
        if not isinstance(template, dict):
            continue
        tmeta = _as_dict(template.get("metadata"))
        pods.append(
            {
                "metadata": {
                    "name": meta.get("name") or "pod",
                    "namespace": ns,
                    "labels": dict(tmeta.get("labels") or {}),
                    "annotations": dict(tmeta.get("annotations") or {}),
                }
            }
        )
    return pods


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _expand(documents: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out.extend(_expand(doc["items"]))
        else:
            out.append(doc)
    return out


def run(args: argparse.Namespace) -> int:
    from webhook.cli.inject import read_sources
    from webhook.controller.routing import names
    from webhook.controller.routing.inventory import build_inventory
    from webhook.controller.routing.render import RenderOptions, render
    from webhook.controller.routing.spec import LaneError, ParentRef, parse_gateway_ref, parse_lane, parse_outputs
    from webhook.injection.manifests import ManifestError, dump_documents, inject_documents, load_documents

    try:
        outputs = parse_outputs(args.outputs)
        east_west: tuple[ParentRef, ...] = ()
        if args.east_west_gateway:
            east_west = (parse_gateway_ref(args.east_west_gateway, "--east-west-gateway"),)
    except LaneError as exc:
        raise UserError(str(exc)) from None
    sources = read_sources(args.filenames, args.recursive)
    documents: list[Any] = []
    try:
        for source in sources:
            documents.extend(_expand(load_documents(source.text, source.name)))
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    lanes = []
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == names.KIND:
            try:
                lanes.append(parse_lane(doc, namespace=args.namespace))
            except LaneError as exc:
                raise UserError(str(exc)) from None
    if not lanes:
        shown = ", ".join(source.name for source in sources)
        raise UserError(f"no Lane (apiVersion {names.API_VERSION}, kind Lane) in {shown}")
    injected = inject_documents([d for d in documents if not (isinstance(d, dict) and d.get("kind") == names.KIND)])
    pods = _pod_templates(injected.documents, args.namespace)
    services = []
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "Service":
            meta = _as_dict(doc.get("metadata"))
            services.append({**doc, "metadata": {**meta, "namespace": meta.get("namespace") or args.namespace}})
    not_ready = set(args.not_ready)
    options = RenderOptions(tag_header=args.tag_header, outputs=outputs, east_west=east_west)
    objects: list[Any] = []
    for namespace in sorted({lane.namespace for lane in lanes}):
        in_ns = [lane for lane in lanes if lane.namespace == namespace]
        inventory = build_inventory(namespace, pods, services)
        every = {
            names.object_name(app.service.name, lane)
            for app in inventory.apps.values()
            if app.service is not None
            for lane in app.versions
        }
        inventory = build_inventory(namespace, pods, services, {s: (0 if s in not_ready else 1) for s in every})
        result = render(in_ns, inventory, options)
        objects.extend(result.objects)
        for lane in in_ns:
            _summary(f"{namespace}/{lane.name}", result.statuses[lane.name])
    if objects:
        sys.stdout.write(dump_documents(objects))
    return EXIT_OK


def _summary(key: str, status: dict[str, Any]) -> None:
    ready: dict[str, Any] = next((c for c in status.get("conditions", ()) if c.get("type") == "Ready"), {})
    print(
        f"# Lane {key}: {status.get('inLane')} in lane; Ready={ready.get('status')}: {ready.get('message')}",
        file=sys.stderr,
    )
    for service in status.get("services", ()):
        why = f" ({service['fallback']}: {service.get('message', '')})" if service.get("fallback") else ""
        print(f"#   {service['name']}: served by {service['lane']}{why}", file=sys.stderr)
