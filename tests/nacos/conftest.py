"""Fixtures of the Nacos tests: a private network namespace, a real Nacos server in it, consumers and agents.

The server is Nacos 2.3.2 as republished on Maven Central by JeecgBoot (a third-party build of the upstream
sources; devtools/nacos/fetch.py), fetched once into ~/.cache/lanes/nacos-2.3.2, started with auth on
(``nacos.core.auth.enabled=true``, token secret, identity key/value) and ``-Dnacos.naming.push.pushTaskDelay=10``
(pushes about 100 ms after a change instead of about 600 ms). For this package pytest's main thread moves into a
network namespace the run creates (devtools/nacos/netns.py): the server, the agents, the apps, the consumers and
the test's own HTTP calls all meet on its addresses, and nothing binds on the host.

Needs root, Java 17+ and Maven. Missing them fails under CI=true and skips loudly otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from devtools.nacos import server as nacos_server
from devtools.nacos.netns import ADDRESSES, NetNamespace
from tests.helper.conftest import start_agent  # noqa: F401 (the same fixture: real agent processes)
from tests.helper.procs import REPO, SampleApp, base_env

SERVICE_PORT = 8848


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the Nacos tests need root (a private network namespace)"
    for tool in ("java", "mvn", "unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"the Nacos tests need {tool}"
    return None


@pytest.fixture(scope="package")
def lab() -> Iterator[NetNamespace]:
    problem = _missing()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem} (CI=true: a missing component is a failure)")
        pytest.skip(f"SKIPPED LOUDLY: {problem}")
    netns = NetNamespace.create()
    netns.enter()
    try:
        yield netns
    finally:
        netns.leave()
        netns.close()


@pytest.fixture(scope="package")
def nacos(lab: NetNamespace) -> Iterator[nacos_server.NacosServer]:
    server = nacos_server.NacosServer.start(None, port=SERVICE_PORT, auth=True, push_delay_ms=10)
    for _ in range(3):  # the first logins of a cold JVM are slow (bcrypt, JIT): warm it before the SDK times out
        server.token()
    print(f"nacos answered a login {server.started_in:.1f}s after start", file=sys.stderr)
    print(f"\nnacos ({nacos_server.fetch.BUILD_NOTE}) ready in {server.started_in:.1f}s", file=sys.stderr)
    try:
        yield server
    finally:
        began = time.monotonic()
        server.stop()
        print(f"nacos stopped in {time.monotonic() - began:.1f}s", file=sys.stderr)


_next_address = iter(ADDRESSES[1:])


@pytest.fixture
def pod_ip() -> str:
    """A fresh stand-in pod IP per test (instance settings outlive instances in Nacos: never reuse one)."""
    return next(_next_address)


@dataclass
class Consumer:
    """devtools/nacos/consumer.py in its own process; ``events`` fill in from its stdout as they come."""

    process: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(event)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def pushes(self) -> list[dict[str, Any]]:
        return [event for event in self.snapshot() if event["event"] == "push"]

    def picks(self) -> list[dict[str, Any]]:
        return [event for event in self.snapshot() if event["event"] == "pick"]

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.snapshot():
                if predicate(event):
                    return event
            if self.process.poll() is not None:
                raise AssertionError(f"consumer exited with {self.process.returncode}")
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; events: {self.snapshot()[-5:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def find(hosts: list[dict[str, Any]], ip: str, port: int) -> dict[str, Any] | None:
    return next((h for h in hosts if h["ip"] == ip and h["port"] == port), None)


@pytest.fixture
def start_consumer(nacos: nacos_server.NacosServer) -> Iterator[Callable[..., Consumer]]:
    consumers: list[Consumer] = []

    def start(service: str, *extra: str) -> Consumer:
        argv = [sys.executable, "-m", "devtools.nacos.consumer", "--server", f"127.0.0.1:{nacos.port}",
                "--service", service, "--username", nacos_server.USERNAME, "--password", nacos_server.PASSWORD,
                *extra]  # fmt: skip
        process = subprocess.Popen(
            argv, cwd=REPO, env=base_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        consumer = Consumer(process)
        threading.Thread(target=consumer._read, daemon=True).start()
        consumers.append(consumer)
        consumer.wait(lambda e: e["event"] == "subscribed", 60, "the consumer to subscribe")
        return consumer

    yield start
    for consumer in consumers:
        consumer.stop()


def registry_env(
    nacos: nacos_server.NacosServer,
    service: str,
    ip: str,
    app_port: int,
    *,
    query: str = "",
    delay: float = 0.0,
    warmup: float = 0.0,
    drain: float = 3.0,
    lane: str = "gray",
    password: str = nacos_server.PASSWORD,
) -> dict[str, str]:
    """The agent's environment as the webhook would inject it for ``lanes.io/registry``."""
    return {
        "LANES_APP_PORT": str(app_port),
        "LANES_POD_IP": ip,
        "LANES_POD_NAME": f"{service}-pod",
        "LANES_APP": service,
        "LANES_LANE": lane,
        "LANES_WARMUP": str(warmup),
        "LANES_DRAIN": str(drain),
        "LANES_REGISTER_DELAY": str(delay),
        "LANES_REGISTRY": f"nacos://127.0.0.1:{nacos.port}?service={service}{query}",
        "LANES_REGISTRY_USERNAME": nacos_server.USERNAME,
        "LANES_REGISTRY_PASSWORD": password,
    }


@pytest.fixture
def start_app() -> Iterator[Callable[..., SampleApp]]:
    apps: list[SampleApp] = []

    def start(**kwargs: Any) -> SampleApp:
        app = SampleApp.start(bind="0.0.0.0", **kwargs)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()
