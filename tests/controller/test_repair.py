"""Repair of pods admitted without injection: reported once, evicted through the Eviction API when configured
(PodDisruptionBudgets respected, no eviction loop while the webhook is still down)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from tests.controller.conftest import Env
from tests.controller.support import (
    AdmissionServer,
    condition_status,
    gated_pod,
    lapsing_leadership,
    managed_webhook,
    metric,
    pinned_template,
    running_controller,
    wait_for,
)
from webhook.contract import names
from webhook.controller import RepairMode, RepairSettings


def plain_pod(name: str, node: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    pod = gated_pod(name, node, gate=False, labels=labels)
    pod["spec"].update(spec)
    return pod


def events_for(env: Env, namespace: str, uid: str, reason: str) -> list[dict[str, Any]]:
    query = {"fieldSelector": f"involvedObject.uid={uid},reason={reason}"}
    return env.kube.get(f"/api/v1/namespaces/{namespace}/events", query)["items"]


def test_uninjected_pods_are_reported_once_and_exempt_pods_are_not(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lanes.controller.repair")
    ns = env.namespace()
    env.enable(env.system_namespace)  # even enabled, the webhook's own namespace is never repaired
    pods = f"/api/v1/namespaces/{ns}/pods"
    bare = env.kube.create(pods, plain_pod("bare", env.node))
    env.kube.create(pods, plain_pod("opted-out", env.node, labels={names.LABEL_INJECT: "false"}))
    env.kube.create(pods, plain_pod("host", env.node, hostNetwork=True))
    env.kube.create(pods, gated_pod("injected", env.node, status_delay=0.0))
    env.kube.create(f"/api/v1/namespaces/{env.system_namespace}/pods", plain_pod("own", env.node))

    settings = env.settings(repair=RepairSettings(mode=RepairMode.REPORT))
    with running_controller(settings, env.kubeconfig) as controller:
        wait_for(lambda: events_for(env, ns, bare["metadata"]["uid"], "NotInjected"), 15, "the Event on the pod")
        time.sleep(1.0)
        assert metric(controller.metrics, "lanes_repair_uninjected_pods") == 1
        event = events_for(env, ns, bare["metadata"]["uid"], "NotInjected")[0]
        assert event["type"] == "Warning" and "admitted without Lanes injection" in event["message"]
        assert event["involvedObject"]["name"] == "bare"
        logged = [r for r in caplog.records if r.getMessage() == "pod admitted without injection"]
        assert [getattr(r, "pod", None) for r in logged] == [f"{ns}/bare"]
        assert metric(controller.metrics, "lanes_repair_evictions_total", {"result": "evicted"}) == 0

    # A new leader (here: the restarted controller) does not report the same pod again.
    with running_controller(settings, env.kubeconfig) as controller:
        wait_for(lambda: metric(controller.metrics, "lanes_repair_uninjected_pods") == 1, 15, "the gauge")
        time.sleep(1.0)
        assert len(events_for(env, ns, bare["metadata"]["uid"], "NotInjected")) == 1
        env.kube.delete(f"{pods}/bare")
        wait_for(lambda: metric(controller.metrics, "lanes_repair_uninjected_pods") == 0, 15, "the gauge to drop")


def test_eviction_respects_pdbs_holds_off_while_the_webhook_is_down_and_repairs_once_it_is_back(env: Env) -> None:
    ns = env.namespace()
    repair = RepairSettings(mode=RepairMode.EVICT, rate=5, burst=5, retry_after=1.0, replacement_timeout=5)
    labels = {"app": "shop"}
    apps = f"/apis/apps/v1/namespaces/{ns}"
    pdb_path = f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"
    with managed_webhook(env, failure_policy="Ignore", repair=repair) as hook:
        port = hook.server.port
        hook.server.stop()  # the webhook is unreachable: pods are admitted without injection (Ignore)
        env.kube.create(
            pdb_path, {"metadata": {"name": "shop"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}}
        )
        template = pinned_template(env.node, labels, {})
        del template["spec"]["readinessGates"]  # as the app's own manifest: the webhook adds the gate
        env.kube.create(
            f"{apps}/deployments",
            {
                "metadata": {"name": "shop"},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
            },
        )

        def current() -> list[dict[str, Any]]:
            return [
                p
                for p in env.kube.get(f"/api/v1/namespaces/{ns}/pods")["items"]
                if not p["metadata"].get("deletionTimestamp")
            ]

        first = wait_for(lambda: (current() or [{}])[0], 30, "the uninjected pod")
        assert names.ANN_STATUS not in (first["metadata"].get("annotations") or {})
        wait_for(lambda: events_for(env, ns, first["metadata"]["uid"], "NotInjected"), 15, "reported")

        # The PodDisruptionBudget refuses (429): retried later, the pod stays.
        metrics = hook.controller.metrics
        wait_for(
            lambda: metric(metrics, "lanes_repair_evictions_total", {"result": "blocked"}) >= 2, 15, "PDB refusals"
        )
        assert current()[0]["metadata"]["uid"] == first["metadata"]["uid"]
        assert metric(metrics, "lanes_repair_evictions_total", {"result": "evicted"}) == 0

        # Without the budget the pod is evicted; its replacement is uninjected too (webhook still down), so the
        # owner is held back with a growing pause instead of being evicted in a loop.
        env.kube.delete(f"{pdb_path}/shop")
        wait_for(lambda: metric(metrics, "lanes_repair_evictions_total", {"result": "evicted"}) >= 1, 15, "evicted")
        time.sleep(4.0)
        evicted_while_down = metric(metrics, "lanes_repair_evictions_total", {"result": "evicted"})
        assert evicted_while_down <= 3, f"{evicted_while_down} evictions in ~4s while the webhook was down"

        # The webhook is back: the next eviction brings the pod back injected, gated, registered and Ready.
        server = AdmissionServer(hook.server.cert_dir, env.workdir / "webhook-2.log", port=port).start()
        try:

            def repaired() -> bool:
                pods = current()
                return (
                    len(pods) == 1
                    and names.ANN_STATUS in (pods[0]["metadata"].get("annotations") or {})
                    and condition_status(pods[0], names.CONDITION_REGISTERED) == "True"
                    and condition_status(pods[0], "Ready") == "True"
                )

            wait_for(repaired, 40, "an injected, registered replacement")
            wait_for(lambda: metric(metrics, "lanes_repair_uninjected_pods") == 0, 10, "nothing left to repair")
        finally:
            server.stop()


def test_a_report_held_back_while_leadership_was_unconfirmed_is_sent_once_it_is(env: Env) -> None:
    """As for the gate: the elector's answer lapses for a moment but the term goes on. The pod found uninjected
    in that moment must still get its Event, although no further watch event will ever name it again."""
    import threading

    from webhook.controller import ControllerMetrics
    from webhook.controller.events import EventRecorder
    from webhook.controller.pods import project
    from webhook.controller.repair import Repair
    from webhook.kube.reflector import Reflector

    ns = env.namespace()
    write_timeout, asked = lapsing_leadership()

    holder: dict[str, Repair] = {}
    pods = Reflector(
        env.kube,
        f"/api/v1/namespaces/{ns}/pods",
        name="pods",
        transform=project,
        on_event=lambda kind, pod, old: holder["repair"].on_pod(kind, pod, old),
    )
    repair = holder["repair"] = Repair(
        env.kube,
        pods,
        lambda name: name == ns,
        write_timeout,
        ControllerMetrics(),
        EventRecorder(env.kube, "test-repair"),
        own_namespace=env.system_namespace,
        settings=RepairSettings(mode=RepairMode.REPORT),
    )
    stop = threading.Event()
    pods.start(stop)
    try:
        bare = env.kube.create(f"/api/v1/namespaces/{ns}/pods", plain_pod("unlucky", env.node))
        wait_for(lambda: events_for(env, ns, bare["metadata"]["uid"], "NotInjected"), 10, "the Event", 0.05)
        assert len(asked) == 2, "asked once in the lapse, once after"
    finally:
        stop.set()
        pods.close()
        repair.stop()
