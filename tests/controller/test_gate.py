"""The readiness gate against the real API server: timing, scope, once per pod start."""

from __future__ import annotations

import time

from tests.controller.conftest import Env
from tests.controller.support import (
    condition_status,
    conditions,
    gated_pod,
    lapsing_leadership,
    metric,
    parse_time,
    running_controller,
    wait_for,
)
from webhook.contract import names

GATE = names.CONDITION_REGISTERED


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def test_gate_turns_true_register_delay_after_containers_ready_and_ready_follows(env: Env) -> None:
    ns = env.namespace()
    with running_controller(env.settings(), env.kubeconfig) as controller:
        wait_for(lambda: controller.is_leader, 10, "leadership")
        # register-delay from lanes.io/status (what the webhook resolved), from the bare annotation, and none
        env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("from-status", env.node, status_delay=2.0))
        env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("from-annotation", env.node, register_delay="1s"))
        env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("no-delay", env.node))

        seen_ready: dict[str, float] = {}
        seen_gate: dict[str, float] = {}

        def observe() -> bool:
            now = time.monotonic()
            for pod in env.kube.get(f"/api/v1/namespaces/{ns}/pods")["items"]:
                name = pod["metadata"]["name"]
                if condition_status(pod, "ContainersReady") == "True":
                    seen_ready.setdefault(name, now)
                if condition_status(pod, GATE) == "True":
                    seen_gate.setdefault(name, now)
            return len(seen_gate) == 3

        wait_for(observe, 20, "all three pods registered", interval=0.05)
        for name, delay in (("from-status", 2.0), ("from-annotation", 1.0), ("no-delay", 0.0)):
            pod = env.kube.get(pod_path(ns, name))
            held = seen_gate[name] - seen_ready[name]
            assert delay - 0.3 <= held <= delay + 1.0, f"{name}: gate after {held:.2f}s, wanted {delay}s"
            cond = conditions(pod)
            stamped = parse_time(cond[GATE]["lastTransitionTime"]) - parse_time(
                cond["ContainersReady"]["lastTransitionTime"]
            )
            assert delay - 1 <= stamped <= delay + 1, (name, stamped)
            assert cond[GATE]["reason"] == "RegisterDelayElapsed"
        # Ready follows the gate (the kubelet's rule, played by the fake node)
        wait_for(
            lambda: all(
                condition_status(p, "Ready") == "True" for p in env.kube.get(f"/api/v1/namespaces/{ns}/pods")["items"]
            ),
            10,
            "Ready after the gate",
        )
        assert metric(controller.metrics, "lanes_gate_patches_total", {"result": "success"}) == 3
        assert metric(controller.metrics, "lanes_gate_pending_pods") == 0
        assert metric(controller.metrics, "lanes_leader") == 1


def test_gate_acts_only_in_enabled_namespaces_and_follows_enabling(env: Env) -> None:
    ns = env.namespace(enabled=False)
    with running_controller(env.settings(), env.kubeconfig) as controller:
        wait_for(lambda: controller.is_leader, 10, "leadership")
        env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("early", env.node))
        wait_for(
            lambda: condition_status(env.kube.get(pod_path(ns, "early")), "ContainersReady") == "True",
            10,
            "containers ready",
        )
        time.sleep(1.5)
        assert condition_status(env.kube.get(pod_path(ns, "early")), GATE) is None, "gated outside enabled ns"

        env.enable(ns)
        wait_for(
            lambda: condition_status(env.kube.get(pod_path(ns, "early")), GATE) == "True", 10, "gate after enabling"
        )

        env.enable(ns, enabled=False)
        wait_for(lambda: metric(controller.metrics, "lanes_gate_pending_pods") == 0, 5, "nothing pending")
        env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("late", env.node))
        wait_for(
            lambda: condition_status(env.kube.get(pod_path(ns, "late")), "ContainersReady") == "True",
            10,
            "containers ready",
        )
        time.sleep(1.5)
        assert condition_status(env.kube.get(pod_path(ns, "late")), GATE) is None, "gated after disabling"
        assert metric(controller.metrics, "lanes_gate_patches_total", {"result": "success"}) == 1


def test_one_patch_per_pod_start_and_unready_containers_keep_the_condition(env: Env) -> None:
    ns = env.namespace()
    with running_controller(env.settings(), env.kubeconfig) as controller:
        wait_for(lambda: controller.is_leader, 10, "leadership")
        created = env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("flappy", env.node))
        uid = created["metadata"]["uid"]
        wait_for(lambda: condition_status(env.kube.get(pod_path(ns, "flappy")), "Ready") == "True", 10, "ready")

        # The kubelet reports a failing readiness probe: containers (and the pod) become unready...
        unready = {
            "metadata": {"uid": uid},
            "status": {
                "conditions": [
                    {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                ]
            },
        }
        env.kube.patch(pod_path(ns, "flappy") + "/status", unready)
        time.sleep(1.0)
        assert condition_status(env.kube.get(pod_path(ns, "flappy")), GATE) == "True"
        # ... and ready again: registration happened once for this pod start, nothing is patched again.
        ready = {"metadata": {"uid": uid}, "status": {"conditions": [{"type": "ContainersReady", "status": "True"}]}}
        env.kube.patch(pod_path(ns, "flappy") + "/status", ready)
        wait_for(lambda: condition_status(env.kube.get(pod_path(ns, "flappy")), "Ready") == "True", 10, "ready again")
        time.sleep(0.5)
        assert metric(controller.metrics, "lanes_gate_patches_total", {"result": "success"}) == 1
        assert metric(controller.metrics, "lanes_gate_patches_total", {"result": "failure"}) == 0


def test_unready_before_the_delay_restarts_it_and_deleting_pods_need_nothing(env: Env) -> None:
    ns = env.namespace()
    with running_controller(env.settings(), env.kubeconfig) as controller:
        wait_for(lambda: controller.is_leader, 10, "leadership")
        created = env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("slow", env.node, register_delay="2s"))
        uid = created["metadata"]["uid"]
        wait_for(lambda: condition_status(env.kube.get(pod_path(ns, "slow")), "ContainersReady") == "True", 10, "ready")
        time.sleep(1.0)
        flip = {"metadata": {"uid": uid}, "status": {"conditions": [{"type": "ContainersReady", "status": "False"}]}}
        env.kube.patch(pod_path(ns, "slow") + "/status", flip)
        time.sleep(0.3)
        flip["status"]["conditions"][0]["status"] = "True"
        env.kube.patch(pod_path(ns, "slow") + "/status", flip)
        ready_again = time.monotonic()
        wait_for(lambda: condition_status(env.kube.get(pod_path(ns, "slow")), GATE) == "True", 10, "gate", 0.05)
        assert time.monotonic() - ready_again >= 1.7, "the delay did not start over"

        # a pod deleted while waiting for the gate is simply forgotten
        env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("doomed", env.node, register_delay="3s"))
        wait_for(lambda: metric(controller.metrics, "lanes_gate_pending_pods") == 1, 10, "pending")
        env.kube.delete(pod_path(ns, "doomed"))
        wait_for(lambda: metric(controller.metrics, "lanes_gate_pending_pods") == 0, 10, "forgotten")
        time.sleep(3.5)
        assert metric(controller.metrics, "lanes_gate_patches_total", {"result": "success"}) == 1
        assert metric(controller.metrics, "lanes_gate_patches_total", {"result": "failure"}) == 0


def test_a_patch_held_back_while_leadership_was_unconfirmed_is_sent_once_it_is(env: Env) -> None:
    """The elector's answer lapses for a moment (a renewal that lands just after the renew deadline, on a loaded
    node) but the term goes on: the pod whose timer fired in that moment must still be registered, although no
    further watch event will ever name it again."""
    import threading

    from webhook.controller import ControllerMetrics
    from webhook.controller.gate import Gate
    from webhook.controller.pods import project
    from webhook.kube.reflector import Reflector

    ns = env.namespace()
    write_timeout, asked = lapsing_leadership()

    holder: dict[str, Gate] = {}
    pods = Reflector(
        env.kube,
        f"/api/v1/namespaces/{ns}/pods",
        name="pods",
        transform=project,
        on_event=lambda kind, pod, old: holder["gate"].on_pod(kind, pod, old),
    )
    gate = holder["gate"] = Gate(env.kube, pods, lambda name: name == ns, write_timeout, ControllerMetrics())
    stop = threading.Event()
    pods.start(stop)
    try:
        env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("unlucky", env.node))
        wait_for(
            lambda: condition_status(env.kube.get(pod_path(ns, "unlucky")), GATE) == "True", 10, "registered", 0.05
        )
        assert len(asked) == 2, "asked once in the lapse, once after"
    finally:
        stop.set()
        pods.close()
        gate.stop()
