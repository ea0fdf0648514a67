"""The list+watch loop against the real API server: resume after watch timeouts, relist on 410 Gone, close."""

from __future__ import annotations

import threading
import time
from typing import Any

from devtools.controlplane import ControlPlane
from tests.controller.conftest import Env
from tests.controller.support import restart_apiserver, wait_for, wait_for_controller_manager
from webhook.kube.client import JSON
from webhook.kube.reflector import Reflector


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def __call__(self, kind: str, obj: JSON, old: JSON | None) -> None:
        self.events.append((kind, obj["metadata"]["name"]))


def configmap(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"test": "reflector"}}, "data": {"k": "v"}}


def start(reflector: Reflector) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_watch_resumes_across_server_timeouts_without_relisting(env: Env) -> None:
    ns = env.namespace(enabled=False)
    path = f"/api/v1/namespaces/{ns}/configmaps"
    recorder = Recorder()
    reflector = Reflector(env.kube, path, name="configmaps", on_event=recorder, watch_timeout=1)
    stop, thread = start(reflector)
    try:
        wait_for(reflector.synced.is_set, 10, "initial list")
        for index in range(4):
            env.kube.create(path, configmap(f"cm-{index}"))
            time.sleep(1.2)  # each watch lasts 1-2 s (timeoutSeconds): several end while this runs
        wait_for(lambda: len(reflector) >= 4, 10, "every configmap seen")
        names = [name for kind, name in recorder.events if kind == "ADDED"]
        assert [n for n in names if n.startswith("cm-")] == [f"cm-{i}" for i in range(4)]
        assert reflector.relists == 1, "a server-side watch timeout must resume from the resourceVersion"
        assert reflector.watch_errors == 0
    finally:
        stop.set()
        reflector.close()
        thread.join(5)
    assert not thread.is_alive()


def test_expired_resource_version_relists_and_reports_the_difference(env: Env, control_plane: ControlPlane) -> None:
    ns = env.namespace(enabled=False)
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for name in ("kept", "changed", "removed"):
        env.kube.create(path, configmap(name))
    recorder = Recorder()
    reflector = Reflector(env.kube, path, name="configmaps", on_event=recorder, label_selector="test=reflector")
    stop, thread = start(reflector)
    wait_for(lambda: reflector.synced.is_set() and len(reflector) == 3, 10, "initial list")
    stop.set()
    reflector.close()
    thread.join(5)

    # While nobody watched: one deleted, one changed, one added; then a restarted API server, whose new watch
    # cache starts after the version the reflector holds: resuming from it is answered with 410 Gone.
    env.kube.delete(f"{path}/removed")
    env.kube.patch(f"{path}/changed", {"data": {"k": "new"}})
    env.kube.create(path, configmap("added"))
    restart_apiserver(control_plane)
    recorder.events.clear()
    stop, thread = start(reflector)
    try:
        wait_for(lambda: reflector.relists >= 2 and reflector.get(f"{ns}/added") is not None, 30, "the relist")
        time.sleep(0.3)
        assert set(recorder.events) == {("DELETED", "removed"), ("MODIFIED", "changed"), ("ADDED", "added")}
        changed = reflector.get(f"{ns}/changed")
        assert reflector.get(f"{ns}/removed") is None and changed is not None and changed["data"] == {"k": "new"}
    finally:
        stop.set()
        reflector.close()
        thread.join(5)
        wait_for_controller_manager(control_plane)


def test_close_interrupts_a_blocked_watch_at_once(env: Env) -> None:
    ns = env.namespace(enabled=False)
    reflector = Reflector(env.kube, f"/api/v1/namespaces/{ns}/configmaps", name="configmaps", watch_timeout=300)
    _, thread = start(reflector)
    wait_for(reflector.synced.is_set, 10, "initial list")
    time.sleep(0.3)  # now blocked reading an idle watch
    closed = time.monotonic()
    reflector.close()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - closed < 1.0


def test_a_watch_whose_connection_a_nat_forgot_is_reopened_and_misses_nothing(env: Env, control_plane: Any) -> None:
    """The lossless_node benchmark's hang: ``conntrack -F`` on the node left the controller's pod watch on a
    connection where nothing arrived and nothing failed, so pods created afterwards were never seen (and never
    registered). A watch that delivers nothing, not even a bookmark, for ``idle_timeout`` is reopened."""
    from kubernetes import config

    from tests.controller.natrelay import NatRelay
    from webhook.kube.client import Kube

    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    host, port = api.configuration.host.removeprefix("https://").rsplit(":", 1)
    relay = NatRelay((host, int(port)))
    api.configuration.host = f"https://{host}:{relay.port}"
    ns = env.namespace(enabled=False)
    path = f"/api/v1/namespaces/{ns}/configmaps"
    recorder = Recorder()
    reflector = Reflector(
        Kube(api), path, name="configmaps", label_selector="test=reflector", on_event=recorder, idle_timeout=3
    )
    stop, thread = start(reflector)
    try:
        wait_for(reflector.synced.is_set, 10, "initial list")
        env.kube.create(path, configmap("before"))
        wait_for(lambda: reflector.get(f"{ns}/before") is not None, 10, "a change before the loss")
        relay.lose_state()
        lost = time.monotonic()
        env.kube.create(path, configmap("after"))  # the server sends first: this connection is now dead
        wait_for(lambda: reflector.get(f"{ns}/after") is not None, 20, "the change made after the NAT lost the watch")
        assert time.monotonic() - lost < 3 + 5, "reopened only after the idle limit and a short backoff"
        assert reflector.relists == 1, "resumed from the resourceVersion: no relist needed"
        assert [n for k, n in recorder.events if k == "ADDED"] == ["before", "after"]
    finally:
        stop.set()
        reflector.close()
        thread.join(5)
        relay.close()


def test_watch_sockets_probe_their_peer_with_tcp_keepalive(env: Env) -> None:
    """Through a real NAT (no relay in between) the keepalive probes notice the dead connection in ~25 s, or
    re-create the NAT state: the watch socket must have them on."""
    import socket

    from webhook.kube.reflector import KEEPALIVE

    ns = env.namespace(enabled=False)
    stream = env.kube.watch(f"/api/v1/namespaces/{ns}/configmaps", {"timeoutSeconds": 5}, read_timeout=10)
    try:
        assert stream.keepalive(*KEEPALIVE)
        sock = stream._response.connection.sock  # the socket the watch reads from
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE[0]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVE[2]
    finally:
        stream.close()
