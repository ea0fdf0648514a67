"""``make demo``: Lanes end to end, on a real node where one can run, else on a local control plane with kwok.

Where a real node can run (root, network + mount namespaces: devtools/realnode), ``make demo`` is
devtools/demo_node.py: the chart installed with helm, the examples as real pods, a rolling restart under load and
failed requests plain vs Lanes. Elsewhere, or with ``--kwok``, one line says why and this module's demo runs, in
about a minute once the binaries are cached: it starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes, so pods get scheduled and reach Running without a kubelet), runs the real
``lanes-webhook serve`` registered through a MutatingWebhookConfiguration and the real controller (which opens
each pod's readiness gate), labels namespace ``shop`` with ``lanes=enabled``, applies ``examples/`` (services
a -> b -> c in lane ``base``, and ``gray`` versions of a and c), and prints what the webhook did to each pod.
Everything is stopped and removed on exit; ``--keep`` leaves it running until Ctrl-C for exploring with kubectl.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from devtools.controlplane import BinaryError, ControlPlane, ControlPlaneError
from devtools.controlplane.binaries import REPO_ROOT
from devtools.controlplane.waits import wait_for_default_service_account
from devtools.dataplane.crds import CRDError
from devtools.dataplane.harness import DataPlaneError
from devtools.local_controller import LocalController, LocalControllerError
from devtools.local_webhook import (
    LocalWebhook,
    LocalWebhookError,
    local_registration,
    register,
    start_local_webhook,
)
from webhook.contract import names

NAMESPACE = "shop"
OWN_NAMESPACE = "lanes-system"


def say(message: str) -> None:
    print(f"[lanes demo] {message}", flush=True)


class DemoError(RuntimeError):
    """A step failed; the message says which and where to look."""


def load_examples(directory: Path) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    if not documents:
        raise DemoError(f"no manifests found in {directory}")
    return documents


def _apply(api_client: Any, documents: list[dict[str, Any]]) -> None:
    from kubernetes import utils

    for document in documents:
        utils.create_from_dict(api_client, document, namespace=NAMESPACE)
        say(f"applied {document['kind']}/{document['metadata']['name']}")


def _pods(api_client: Any) -> list[dict[str, Any]]:
    from kubernetes import client

    response: Any = client.CoreV1Api(api_client).list_namespaced_pod(NAMESPACE, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(response.data)["items"]
    return sorted(items, key=lambda p: p["metadata"]["name"])


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") == kind), None)


def _is_ready(pod: dict[str, Any]) -> bool:
    condition = _condition(pod, "Ready")
    return condition is not None and condition.get("status") == "True"


def _wait_for_pods(api_client: Any, expected: int, timeout: float = 90) -> list[dict[str, Any]]:
    """Until every pod is Ready: kwok reports ContainersReady, the controller then opens the gate."""
    deadline = time.monotonic() + timeout
    pods = _pods(api_client)
    while time.monotonic() < deadline:
        if len(pods) >= expected and all(_is_ready(p) for p in pods):
            break
        time.sleep(0.5)
        pods = _pods(api_client)
    return pods


def _start_controller(plane: ControlPlane, workdir: Path) -> LocalController:
    """The real controller (readiness gate and repair; certificates are the demo's own)."""
    args = [
        f"--kubeconfig={plane.kubeconfig}",
        f"--namespace={OWN_NAMESPACE}",
        "--repair=report",
        "--lease-duration=5",
        "--renew-deadline=4",
        "--retry-period=1",
    ]
    return LocalController(args, workdir / "lanes-controller.log").start()


def _row(pod: dict[str, Any]) -> list[str]:
    meta, spec = pod["metadata"], pod["spec"]
    labels = meta.get("labels") or {}
    injected = [c["name"] for c in spec.get("initContainers", []) if c["name"] in names.INJECTED_CONTAINERS]
    gates = [g["conditionType"] for g in spec.get("readinessGates", [])]
    prestop = []
    for container in spec["containers"]:
        hook = (container.get("lifecycle") or {}).get("preStop") or {}
        if "httpGet" in hook:
            prestop.append(f"GET :{hook['httpGet']['port']}{hook['httpGet'].get('path', '')}")
        elif "sleep" in hook:
            prestop.append(f"sleep {hook['sleep']['seconds']}s")
        elif hook:
            prestop.append("user hook")
    return [
        meta["name"],
        labels.get(names.LABEL_LANE, "-"),
        labels.get(names.LABEL_APP, "-"),
        ",".join(injected) or "-",
        ",".join(gates) or "-",
        ",".join(prestop) or "-",
        str(spec.get("terminationGracePeriodSeconds", "-")),
        pod.get("status", {}).get("phase", "-"),
        _registered_after(pod),
    ]


def _registered_after(pod: dict[str, Any]) -> str:
    """Seconds from ContainersReady to the gate opening: the register-delay at work."""
    ready, gate = _condition(pod, "ContainersReady"), _condition(pod, names.CONDITION_REGISTERED)
    if not ready or not gate or gate.get("status") != "True":
        return "-"
    import datetime as dt

    def at(condition: dict[str, Any]) -> dt.datetime:
        return dt.datetime.fromisoformat(str(condition["lastTransitionTime"]).replace("Z", "+00:00"))

    return f"{max(0.0, (at(gate) - at(ready)).total_seconds()):.0f}s"


def render_table(pods: list[dict[str, Any]]) -> str:
    """A kubectl-style table of what Lanes injected into each pod."""
    header = ["POD", "LANE", "APP", "INJECTED", "READINESS GATES", "PRESTOP", "GRACE", "PHASE", "REGISTERED"]
    rows = [header, *(_row(p) for p in pods)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def run(keep: bool, examples: Path) -> int:
    from kubernetes import client, config

    documents = load_examples(examples)
    workdir = Path(tempfile.mkdtemp(prefix="lanes-demo-"))
    say("starting etcd, kube-apiserver, controller-manager, scheduler and kwok (builds them on first run)")
    plane = ControlPlane(controller_manager=True, scheduler=True, kwok=True, workdir=workdir / "cluster")
    webhook: LocalWebhook | None = None
    controller: LocalController | None = None
    try:
        started = time.monotonic()
        plane.start()
        say(f"control plane {plane.version()['gitVersion']} ready at {plane.url} in {time.monotonic() - started:.0f}s")
        api_client = config.new_client_from_config(config_file=str(plane.kubeconfig))
        # plain dicts are what the API accepts; the typed client models add nothing here
        core: Any = client.CoreV1Api(api_client)
        core.create_node(
            {
                "metadata": {
                    "name": "kwok-node-1",
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {"type": "kwok", "kubernetes.io/os": "linux"},
                }
            }
        )
        defaults = {"own_namespace": OWN_NAMESPACE, "helper_image": "lanes-helper:dev"}
        webhook = start_local_webhook(plane, workdir / "webhook", defaults)
        say(f"lanes-webhook serving at {webhook.url} (log: {webhook.log_path})")
        # no wait here: the API server loads it while the namespaces and the controller are set up (below)
        register(
            api_client,
            local_registration("lanes", webhook.url, own_namespace=OWN_NAMESPACE, ca_pem=webhook.ca_pem),
            settle=0,
        )
        core.create_namespace({"metadata": {"name": OWN_NAMESPACE}})
        controller = _start_controller(plane, workdir)
        say(f"lanes controller running (readiness gate, repair; log: {controller.log_path})")
        core.create_namespace({"metadata": {"name": NAMESPACE, "labels": {"lanes": "enabled"}}})
        say(f"namespace {NAMESPACE} labeled lanes=enabled; waiting for its default ServiceAccount")
        wait_for_default_service_account(api_client, NAMESPACE)
        time.sleep(1)  # the API server loads new webhook configurations through an informer
        _apply(api_client, documents)
        expected = sum(int(d.get("spec", {}).get("replicas", 1)) for d in documents if d.get("kind") == "Deployment")
        pods = _wait_for_pods(api_client, expected)
        print()
        print(render_table(pods))
        print()
        ready = sum(_is_ready(p) for p in pods)
        say(
            f"{len(pods)} pods, {ready} Ready: each labeled with its lane and app, with a lossless preStop, and "
            "Ready only after the controller opened its lanes.io/registered gate (REGISTERED = register-delay)"
        )
        from devtools.dataplane.harness import preflight as dataplane_preflight
        from devtools.dataplane.scenario import routing_demo

        why_not = dataplane_preflight()
        if why_not:
            say(f"lane routing part skipped: {why_not}")
        else:
            routing_demo(plane, api_client, workdir / "dataplane", say)
        if keep:
            say(f"kept running: export KUBECONFIG={plane.kubeconfig}  (Ctrl-C stops and cleans up)")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    finally:
        if controller is not None:
            controller.stop()
        if webhook is not None:
            webhook.stop()
        plane.stop(remove_workdir=False)
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
        say("stopped and cleaned up")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the cluster running until Ctrl-C")
    parser.add_argument("--examples", type=Path, default=REPO_ROOT / "examples", help="manifests to apply")
    parser.add_argument("--kwok", action="store_true", help="the fake-node demo even where a real node could run")
    args = parser.parse_args(argv)
    try:
        if not args.kwok:
            from devtools.realnode import preflight

            why_not = preflight()
            if why_not is None:
                from devtools import demo_node

                return demo_node.run(args.keep, args.examples)
            say(f"no real node here ({why_not}): running on kwok's fake nodes instead (nothing really runs)")
        return run(args.keep, args.examples)
    except (BinaryError, ControlPlaneError, DemoError, LocalControllerError, LocalWebhookError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (DataPlaneError, CRDError) as exc:  # the routing part; the messages name the logs
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
