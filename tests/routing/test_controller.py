"""Lane routing as the chart runs it: ``python -m webhook.controller --lanes ...``, leader only, on credentials
bound to exactly the controller's documented rules (webhook.controller.rbac with routing on)."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

from tests.controller.support import ControllerProcess, grant, restricted_kubeconfig, wait_for
from tests.namespaces import make_namespace
from tests.routing.conftest import Routing
from webhook.controller.routing.settings import ReconcilerSettings
from webhook.controller.settings import ControllerSettings, LeaseTiming, RepairMode, RepairSettings
from webhook.kube.client import KubeError


def test_the_controller_process_reconciles_lanes_as_leader(routing: Routing, k8s: object, tmp_path: Path) -> None:
    system = make_namespace(k8s)  # type: ignore[arg-type]
    token = uuid.uuid4().hex[:6]
    settings = ControllerSettings(
        namespace=system,
        manage_certs=False,
        namespace_selector=f"lanes.test/none={token}",
        lease=LeaseTiming(3.0, 2.0, 0.4),
        repair=RepairSettings(mode=RepairMode.OFF),
        routing=ReconcilerSettings(),
    )
    user = f"lanes-controller-{token}"
    created = grant(routing.kube, user, settings)
    kubeconfig = restricted_kubeconfig(routing.control_plane, user, tmp_path / "user")
    routing.scenario()
    process = ControllerProcess(
        [
            f"--kubeconfig={kubeconfig}",
            f"--namespace={system}",
            f"--identity=ctrl-{token}",
            "--repair=off",
            f"--namespace-selector={settings.namespace_selector}",
            "--lease-duration=3",
            "--renew-deadline=2",
            "--retry-period=0.4",
            "--lanes",
            "--lanes-outputs=GatewayAPI,Istio",
        ],
        tmp_path / "controller.log",
    ).start()
    try:
        routing.create_lane(
            "gray",
            services=["a", "b", "c"],
            match=[{"headers": [{"name": "x-user-id", "value": "100"}]}],
            entry={"service": "a", "port": 8080},
            gateway={"parentRefs": [{"name": "edge", "namespace": "gateways"}]},
        )
        wait_for(lambda: (routing.lane().get("status") or {}).get("inLane") == "2/3", 60, "the Lane reconciled")
        kinds = {kind for kind, _ in routing.generated()}
        assert kinds == {"Service", "HTTPRoute", "DestinationRule", "VirtualService"}
        log = process.log()
        assert "forbidden" not in log.lower(), log[-2000:]
        assert '"level":"error"' not in log, log[-3000:]  # e.g. a reconcile that crashed and was retried
    finally:
        process.stop()
        for path in reversed(created):
            with contextlib.suppress(KubeError):
                routing.kube.delete(path)
        with contextlib.suppress(KubeError):
            routing.kube.delete(f"/api/v1/namespaces/{system}")
