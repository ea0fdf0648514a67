"""Lane routing at namespace scale: ``python -m bench.routing [--quick] [--results DIR]``.

A local control plane (etcd, kube-apiserver, kube-controller-manager for the EndpointSlices, kwok for the pods),
the Lane, Gateway API and Istio CRDs, and one namespace with SERVICES services (a Service and a base pod each)
and LANES Lanes; every 5th service has a version in one of the lanes (each lane: 8 of the 200 in the lane, the rest
fall back). The Lane reconciler runs in this process on the admin credentials. Base Services are headless (the
test control plane's Service IP range is a /24; the generated per-lane Services take ClusterIPs). Measured:

- ``initial``: from creating the Lanes to every generated object applied and every Lane's status written (seconds,
  API writes by kind);
- ``resync``: a forced re-render of the namespace: API writes (target 0);
- ``change``: one Lane's match rule edited: seconds until its edge route carries it, writes;
- ``fallback``: a lane version's only pod loses readiness: seconds from the pod status PATCH until that service's
  VirtualService has no lane rule (target < 2 s; it includes the EndpointSlice controller's own delay), and back.

Targets (issue 13): change applied < 1 s, fallback < 2 s, zero writes on resync. Numbers from one run on this
shared 2-core machine; nothing is pinned.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

SERVICES = 200
LANES = 5


def _say(message: str) -> None:
    print(f"[bench routing] {message}", file=sys.stderr, flush=True)


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def run(quick: bool = False, work: Path | None = None) -> dict[str, Any]:
    from kubernetes import config as kube_config

    from devtools.controlplane import ControlPlane
    from devtools.dataplane import crds
    from webhook.controller.routing.reconciler import LaneReconciler
    from webhook.controller.routing.render import RenderOptions
    from webhook.controller.routing.settings import ReconcilerSettings
    from webhook.kube.client import Kube

    services = 20 if quick else SERVICES
    lanes = 2 if quick else LANES
    repo = Path(__file__).resolve().parent.parent
    plane = ControlPlane(controller_manager=True, scheduler=False, kwok=True)
    plane.start()
    result: dict[str, Any] = {"services": services, "lanes": lanes}
    try:
        client = kube_config.new_client_from_config(config_file=str(plane.kubeconfig))
        kube = Kube(client)
        crds.install_crds(
            client, [repo / "charts/lanes/crds/lanes.io_lanes.yaml", *crds.gateway_api_crds(), *crds.istio_crds()]
        )
        node = "bench-routing-kwok"
        kube.create("/api/v1/nodes", {"metadata": {"name": node, "annotations": {"kwok.x-k8s.io/node": "fake"}}})
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
        _wait(lambda: _exists(kube, f"/api/v1/namespaces/{ns}/serviceaccounts/default"), 120, "default SA")
        lane_names = [f"lane{i}" for i in range(lanes)]
        gate_pod = ""
        _say(f"creating {services} services and their pods")
        for index in range(services):
            app = f"svc{index:03d}"
            kube.create(
                f"/api/v1/namespaces/{ns}/services",
                {
                    "metadata": {"name": app},
                    # headless: the test control plane's Service range is a /24, too small for 200 base plus 240
                    # per-lane ClusterIPs (the per-lane Services the reconciler generates stay ClusterIP)
                    "spec": {"clusterIP": "None", "selector": {"app": app}, "ports": [{"name": "http", "port": 80}]},
                },
            )
            _pod(kube, ns, node, app, "base")
            if index % 5 == 0:
                lane = lane_names[(index // 5) % lanes]
                name = _pod(kube, ns, node, app, lane, gate=index == 0)
                if index == 0:
                    gate_pod = name
                    _set_ready(kube, ns, name, True)
        _wait(lambda: _ready_pods(kube, ns) >= services + (services + 4) // 5, 300, "every pod Ready")
        reconciler = LaneReconciler(
            kube, settings=ReconcilerSettings(options=RenderOptions(outputs=("GatewayAPI", "Istio")), workers=2)
        )
        reconciler.start()
        assert reconciler.wait_synced(60)
        started = time.monotonic()
        for lane in lane_names:
            spec = {
                "match": [{"headers": [{"name": "x-user-id", "value": lane}]}],
                "entry": {"service": "svc000", "port": 80},
                "gateway": {"parentRefs": [{"name": "edge", "namespace": "gateways"}]},
            }
            kube.create(
                f"/apis/lanes.io/v1alpha1/namespaces/{ns}/lanes",
                {"apiVersion": "lanes.io/v1alpha1", "kind": "Lane", "metadata": {"name": lane}, "spec": spec},
            )
        # per-lane Services (every base + the lane versions), a DestinationRule + VirtualService per service, edges
        expected = services + (services + 4) // 5 + 2 * services + lanes

        def settled() -> bool:
            if reconciler.writes.applies < expected or len(reconciler.queue):
                return False
            for lane in lane_names:
                status = kube.get(f"/apis/lanes.io/v1alpha1/namespaces/{ns}/lanes/{lane}").get("status") or {}
                if "observedGeneration" not in status:
                    return False
            return True

        _wait(settled, 600, "every object applied", interval=0.05)
        result["initial"] = {"seconds": round(time.monotonic() - started, 3), **_writes(reconciler)}
        _say(f"initial: {result['initial']}")
        _quiet(reconciler, 3.0, 120)  # late EndpointSlice updates (ready counts in the status) settle first
        result["initial"]["writes_until_quiet"] = reconciler.writes.total
        before = reconciler.writes.total
        reconciles = reconciler.reconciles
        reconciler.resync()
        _wait(lambda: reconciler.reconciles > reconciles and not len(reconciler.queue), 60, "resync")
        time.sleep(1)
        result["resync"] = {"writes": reconciler.writes.total - before}
        _say(f"resync: {result['resync']}")
        # a change: lane0 gets a second match rule
        before = reconciler.writes.total
        path = f"/apis/lanes.io/v1alpha1/namespaces/{ns}/lanes/lane0"
        started = time.monotonic()
        kube.patch(path, {"spec": {"match": [{"headers": [{"name": "x-user-id", "value": "changed"}]}]}}, "merge")
        route = f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/lane0-edge"
        _wait(lambda: "changed" in json.dumps(kube.get(route)["spec"]), 30, "the changed route")
        result["change"] = {"seconds": round(time.monotonic() - started, 3)}
        time.sleep(1)
        result["change"]["writes"] = reconciler.writes.total - before
        _say(f"change: {result['change']}")
        # fallback: svc000's lane0 pod loses readiness
        vs = f"/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/svc000-lanes"

        def rules() -> list[str]:
            return [r["name"] for r in kube.get(vs)["spec"]["http"]]

        started = time.monotonic()
        _set_ready(kube, ns, gate_pod, False)
        _wait(lambda: rules() == ["baseline"], 30, "fallback applied")
        result["fallback"] = {"seconds": round(time.monotonic() - started, 3)}
        started = time.monotonic()
        _set_ready(kube, ns, gate_pod, True)
        _wait(lambda: rules() == ["lane-lane0", "baseline"], 30, "lane restored")
        result["fallback"]["restore_seconds"] = round(time.monotonic() - started, 3)
        _say(f"fallback: {result['fallback']}")
        reconciler.stop()
        result["targets"] = {
            "change_under_1s": result["change"]["seconds"] < 1.0,
            "fallback_under_2s": result["fallback"]["seconds"] < 2.0,
            "zero_writes_on_resync": result["resync"]["writes"] == 0,
        }
    finally:
        plane.stop(remove_workdir=True)
    return result


def _quiet(reconciler: Any, seconds: float, timeout: float) -> None:
    """Wait until the reconciler has written nothing for ``seconds``."""
    deadline = time.monotonic() + timeout
    last, since = reconciler.writes.total, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if reconciler.writes.total != last:
            last, since = reconciler.writes.total, time.monotonic()
        elif time.monotonic() - since >= seconds and not len(reconciler.queue):
            return
    raise TimeoutError(f"the reconciler kept writing for {timeout}s")


def _exists(kube: Any, path: str) -> bool:
    from webhook.kube.client import KubeError

    try:
        kube.get(path)
        return True
    except KubeError:
        return False


def _pod(kube: Any, ns: str, node: str, app: str, lane: str, gate: bool = False) -> str:
    name = f"{app}-{lane}"
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "app", "image": "app"}]}
    if gate:
        spec["readinessGates"] = [{"conditionType": "lanes.test/serving"}]
    kube.create(
        f"/api/v1/namespaces/{ns}/pods",
        {"metadata": {"name": name, "labels": {"app": app, "lanes.io/app": app, "lanes.io/lane": lane}}, "spec": spec},
    )
    return name


def _set_ready(kube: Any, ns: str, pod: str, ready: bool) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    value = "True" if ready else "False"
    conditions = [{"type": "lanes.test/serving", "status": value, "lastTransitionTime": now}]
    if not ready:
        conditions.append({"type": "Ready", "status": "False", "reason": "Bench", "lastTransitionTime": now})
    path = f"/api/v1/namespaces/{ns}/pods/{pod}/status"
    _wait(lambda: kube.get(path).get("status", {}).get("podIP"), 60, f"{pod} running")
    kube.patch(path, {"status": {"conditions": conditions}})


def _ready_pods(kube: Any, ns: str) -> int:
    items = kube.get(f"/api/v1/namespaces/{ns}/pods").get("items") or []
    return sum(
        1
        for p in items
        if any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in p.get("status", {}).get("conditions", [])
        )
    )


def _writes(reconciler: Any) -> dict[str, int]:
    w = reconciler.writes
    return {
        "writes": w.total,
        "applies": w.applies,
        "statuses": w.statuses,
        "finalizers": w.finalizers,
        "deletes": w.deletes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    from webhook.cli.jsonlog import configure_logging

    configure_logging("warning")  # the reconciler's warnings, with their details, on stderr
    result = run(args.quick)
    out = args.results or (Path(__file__).resolve().parent / "results" / ("quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    (out / "routing.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
