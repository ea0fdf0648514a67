"""Rolling Nacos-discovered providers, plain vs Lanes: failed requests and p99 seen by real Nacos consumers.

Processes on one machine, inside a network namespace the run creates (devtools/nacos/netns.py): the real node
(kubelet, containerd) is not used here, so "pods" are process groups and the rollout is driven the way the
kubelet would drive it. Per provider pod:

- **plain**: the sample app (examples/sample-app/app.py, 1 s cold start, graceful SIGTERM) and its own Nacos
  client (the official Python SDK, as Spring Cloud Alibaba or Dubbo register) that registers the pod the moment it
  starts; a rollout replaces a pod by starting the new one, waiting until its port accepts (a readiness probe),
  then sending SIGTERM to the old pod's processes (its client's gRPC connection closes: Nacos removes the
  instance);
- **Lanes**: the same app with a ``lanes-agent`` in ``register`` mode (register delay 1 s, warm-up 4 s, drain
  3 s); the rollout waits for the new agent's /ready, calls the old pod's /prestop (as the kubelet runs the
  preStop hook) and sends SIGTERM when it returns.

Consumers: devtools/nacos/consumer.py (nacos-sdk-python over gRPC, subscribed, weighted random choice as Nacos's
Java client makes it, one new connection per request). Server: Nacos 2.3.2, JeecgBoot's third-party build from
Maven Central, ``pushTaskDelay=10``, auth off. Needs root, Java and Maven.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import REPO, ToolMissing, percentile, rounded, say

APP = REPO / "examples" / "sample-app" / "app.py"
SERVICE_PORT = 8848


@dataclass
class Pod:
    ip: str
    port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    agent_port: int | None = None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signum)

    def wait(self, timeout: float = 20) -> None:
        for process in self.processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANES_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _accepting(ip: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def _get(port: int, path: str, timeout: float) -> tuple[int, bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


class Lab:
    def __init__(self, work: Path, service: str, addresses: list[str]) -> None:
        self.work = work
        self.service = service
        self.addresses = iter(addresses)
        self.next_port = 20000

    def start_pod(self, mode: str) -> Pod:
        ip = next(self.addresses)
        self.next_port += 1
        port = self.next_port
        app_env = {"PORT": str(port), "COLD_START": "1", "SIGTERM": "graceful", "GRACE": "5", "NAME": ip}
        log = open(self.work / f"{mode}-{ip}.log", "wb")  # noqa: SIM115 (kept open for the process' life)
        pod = Pod(ip, port)
        pod.processes.append(subprocess.Popen([sys.executable, str(APP)], env=_env(app_env), stdout=log,
                                              stderr=subprocess.STDOUT))  # fmt: skip
        if mode == "plain":
            registrar = [sys.executable, "-m", "devtools.nacos.consumer", "--server", f"127.0.0.1:{SERVICE_PORT}",
                         "--service", self.service, "--register-ip", ip, "--register-port", str(port)]  # fmt: skip
            pod.processes.append(subprocess.Popen(registrar, cwd=REPO, env=_env({}), stdin=subprocess.PIPE,
                                                  stdout=subprocess.DEVNULL, stderr=log))  # fmt: skip
        else:
            self.next_port += 1
            pod.agent_port = self.next_port
            agent_env = {
                "LANES_AGENT_PORT": str(pod.agent_port), "LANES_APP_PORT": str(port), "LANES_POD_IP": ip,
                "LANES_APP": self.service, "LANES_POD_NAME": f"{self.service}-{ip}", "LANES_WARMUP": "4",
                "LANES_REGISTER_DELAY": "1", "LANES_DRAIN": "3",
                "LANES_REGISTRY": f"nacos://127.0.0.1:{SERVICE_PORT}?service={self.service}",
            }  # fmt: skip
            pod.processes.append(subprocess.Popen([sys.executable, "-m", "helper", "agent"], cwd=REPO,
                                                  env=_env(agent_env), stdout=log, stderr=subprocess.STDOUT))
        return pod

    def wait_ready(self, pod: Pod) -> None:
        if pod.agent_port is None:
            _wait(lambda: _accepting(pod.ip, pod.port), 30, f"{pod.ip}:{pod.port} to accept")
        else:
            _wait(lambda: _get(pod.agent_port, "/ready", 1)[0] == 200, 30, f"agent of {pod.ip} ready")

    def stop_pod(self, pod: Pod) -> None:
        if pod.agent_port is not None:
            _get(pod.agent_port, "/prestop", 30)  # the kubelet's preStop hook: held for the drain
        pod.signal(signal.SIGTERM)
        pod.wait()


def _consume(lab: Lab, count: int) -> list[subprocess.Popen[str]]:
    argv = [sys.executable, "-m", "devtools.nacos.consumer", "--server", f"127.0.0.1:{SERVICE_PORT}",
            "--service", lab.service, "--pick-every", "0.01", "--call", "--path", "/work"]  # fmt: skip
    return [subprocess.Popen(argv, cwd=REPO, env=_env({}), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(count)]  # fmt: skip


def _collect(process: subprocess.Popen[str], sink: list[dict[str, Any]]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "pick" and "result" in event:
            sink.append(event)


def _scenario(mode: str, lab: Lab, providers: int, rounds: int, steady_s: float) -> dict[str, Any]:
    pods = [lab.start_pod(mode) for _ in range(providers)]
    for pod in pods:
        lab.wait_ready(pod)
    time.sleep(6 if mode == "lanes" else 1)  # past the register delay and the ramp: steady state
    consumers = _consume(lab, 2)
    calls: list[dict[str, Any]] = []
    readers = [threading.Thread(target=_collect, args=(c, calls), daemon=True) for c in consumers]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 60
    while len({c["host"] for c in calls}) < providers and time.monotonic() < deadline:
        time.sleep(0.1)  # every consumer is subscribed and sees every provider
    time.sleep(steady_s)
    rollout_started = time.time()
    for _ in range(rounds):
        for index, old in enumerate(list(pods)):
            new = lab.start_pod(mode)
            lab.wait_ready(new)
            lab.stop_pod(old)
            pods[index] = new
    rollout_ended = time.time()
    time.sleep(2)
    for consumer in consumers:
        if consumer.stdin is not None:
            consumer.stdin.close()
    for consumer in consumers:
        try:
            consumer.wait(15)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait(5)
    for pod in pods:
        pod.signal()
        pod.wait()
    during = [c for c in calls if rollout_started <= c["t"] <= rollout_ended + 2]
    steady = [c for c in calls if c["t"] < rollout_started]
    latencies = [c["ms"] for c in during if c["result"] == "ok"]
    return {
        "requests": len(during),
        "failed": sum(1 for c in during if c["result"] == "error"),
        "errors": sorted({c.get("error", "") for c in during if c["result"] == "error"})[:5],
        "p99_ms": rounded(percentile(latencies, 0.99), 2),
        "steady_p99_ms": rounded(percentile([c["ms"] for c in steady if c["result"] == "ok"], 0.99), 2),
        "steady_requests": len(steady),
        "rollout_s": round(rollout_ended - rollout_started, 2),
    }


def run(quick: bool, work: Path, results: Path | None = None) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise ToolMissing("nacos_rollout needs root (a private network namespace)")
    from devtools.nacos import fetch
    from devtools.nacos.netns import ADDRESSES, NetNamespace
    from devtools.nacos.server import NacosServer

    fetch.ensure_server()
    netns = NetNamespace.create()
    netns.enter()
    server = None
    try:
        started = time.monotonic()
        server = NacosServer.start(None, port=SERVICE_PORT, auth=False, push_delay_ms=10)
        say(f"nacos ready in {time.monotonic() - started:.1f}s ({fetch.BUILD_NOTE})")
        providers, rounds, steady = (2, 1, 3.0) if quick else (3, 2, 10.0)
        outcome: dict[str, Any] = {}
        for offset, mode in enumerate(("plain", "lanes")):
            lab = Lab(work, f"bench-{mode}", list(ADDRESSES[1 + offset * 15: 16 + offset * 15]))
            say(f"nacos_rollout: {mode}, {providers} providers, {rounds} rolling round(s)")
            outcome[mode] = _scenario(mode, lab, providers, rounds, steady)
            say(f"nacos_rollout: {mode}: {outcome[mode]}")
    finally:
        if server is not None:
            server.stop()
        netns.leave()
        netns.close()
    return {
        "params": {
            "providers": providers, "rounds": rounds, "consumers": 2, "server": fetch.BUILD_NOTE,
            "push_task_delay_ms": 10, "processes_not_pods": True,
        },
        "summary": {
            "plain_failed": outcome["plain"]["failed"],
            "lanes_failed": outcome["lanes"]["failed"],
            "plain_p99_ms": outcome["plain"]["p99_ms"],
            "lanes_p99_ms": outcome["lanes"]["p99_ms"],
        },
        **outcome,
    }
