"""Start and stop a real standalone Nacos server (embedded Derby) inside a :class:`NetNamespace`.

The server is the third-party 2.3.2 build described in devtools/nacos/fetch.py. Flags that matter:

- ``-Dnacos.standalone=true`` with a temporary ``nacos.home``: embedded storage, nothing kept between runs;
- ``-Dnacos.naming.push.pushTaskDelay=10`` (``push_delay_ms``): pushes to subscribers about 100 ms after a change
  instead of the default ~600 ms; tests that measure push latency say which one they ran with;
- ``auth=True``: ``nacos.core.auth.enabled=true`` with a token secret and a server identity key/value, the
  default user ``nacos``/``nacos`` (created by the embedded schema);
- ``-Dnacos.istio.mcp.server.enabled=false``, ``-Xmx512m -XX:+UseSerialGC``: small on a 2-core machine.

Ready once ``GET /nacos/v1/console/health/readiness`` answers ``OK`` and, with auth, a login succeeds (it answers
500 for a few seconds after readiness) (5-9 s after start on an idle 2-core
machine, 50 s and more while Go builds share it).
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.nacos import fetch
from devtools.nacos.netns import NetNamespace, die_with_parent

DEFAULT_PORT = 8848
USERNAME = "nacos"
PASSWORD = "nacos"
"""The default administrator of a fresh 2.3.2 database."""
TOKEN_SECRET = base64.b64encode(b"lanes-tests-nacos-token-secret-key-0123456789").decode()
IDENTITY = ("lanes-identity", "lanes-identity-value")


class ServerError(RuntimeError):
    """The server did not start; the message has the tail of its log."""


@dataclass
class NacosServer:
    """One server process; ``base`` is its HTTP origin (reachable from inside the namespace)."""

    port: int
    auth: bool
    home: Path
    process: subprocess.Popen[bytes]
    started_in: float = 0.0
    log_path: Path = field(default_factory=Path)
    netns: NetNamespace | None = None
    """Where it runs; its own HTTP calls (readiness, the admin helpers) enter it for the call."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        netns: NetNamespace | None = None,
        *,
        port: int = DEFAULT_PORT,
        auth: bool = False,
        push_delay_ms: int | None = 10,
        timeout: float = 180.0,
        version: str = fetch.VERSION,
    ) -> NacosServer:
        """Start it (inside ``netns`` when given; else in the caller's current namespace) and wait until ready."""
        fetch.ensure_server(version)
        java = shutil.which("java")
        if java is None:
            raise ServerError("java is not installed")
        home = Path(tempfile.mkdtemp(prefix="lanes-nacos-home."))
        flags = [
            "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dnacos.standalone=true", f"-Dnacos.home={home}", "-Dnacos.server.ip=127.0.0.1",
            # logs default to ~/nacos/logs (and the embedded client's to ~/logs): keep everything in the temp home
            f"-Dnacos.logs.path={home / 'logs'}", f"-Duser.home={home}", f"-DJM.LOG.PATH={home / 'logs'}",
            "-Dserver.address=127.0.0.1", f"-Dserver.port={port}", "-Dnacos.istio.mcp.server.enabled=false",
            "-Dnacos.core.auth.system.type=nacos",
            # Derby's first boot can take more than the default 3 s pool timeout on a loaded machine
            "-Ddb.pool.config.connectionTimeout=60000", f"-Dnacos.core.auth.enabled={'true' if auth else 'false'}",
        ]  # fmt: skip
        if auth:
            flags += [
                f"-Dnacos.core.auth.plugin.nacos.token.secret.key={TOKEN_SECRET}",
                f"-Dnacos.core.auth.server.identity.key={IDENTITY[0]}",
                f"-Dnacos.core.auth.server.identity.value={IDENTITY[1]}",
            ]
        if push_delay_ms is not None:
            flags.append(f"-Dnacos.naming.push.pushTaskDelay={push_delay_ms}")
        argv = [java, *flags, "-cp", fetch.classpath(version), "com.alibaba.nacos.Nacos"]
        log_path = home / "stdout.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                netns.command(argv) if netns else argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=home,
                preexec_fn=die_with_parent,
            )
        server = cls(port, auth, home, process, log_path=log_path, netns=netns)
        began = time.monotonic()
        try:
            server.wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        server.started_in = time.monotonic() - began
        return server

    def _urlopen(self, request: urllib.request.Request | str, timeout: float) -> tuple[int, bytes]:
        if self.netns is not None:
            self.netns.enter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, answer.read()
        finally:
            if self.netns is not None:
                self.netns.leave()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"nacos exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, body = self._urlopen(f"{self.base}/nacos/v1/console/health/readiness", timeout=2)
                if status == 200 and body.strip() == b"OK" and (not self.auth or self.token()):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"nacos not ready within {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- a tiny admin client for the tests (urllib: independent of the helper's own HTTP client) ----------

    def token(self) -> str | None:
        if not self.auth:
            return None
        answer = self.call("POST", "/nacos/v1/auth/login", {"username": USERNAME, "password": PASSWORD}, auth=False)
        return str(answer["accessToken"])

    def call(self, method: str, path: str, params: dict[str, Any] | None = None, *, auth: bool = True) -> Any:
        """One request; JSON answers decoded, text answers returned as text. Raises on HTTP errors."""
        query = dict(params or {})
        if auth and self.auth:
            query["accessToken"] = self.token()
        data = urllib.parse.urlencode(query)
        url = f"{self.base}{path}"
        if method == "GET":
            request = urllib.request.Request(f"{url}?{data}", method=method)
        else:
            request = urllib.request.Request(url, data=data.encode(), method=method)
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        body = self._urlopen(request, timeout=5)[1].decode()
        try:
            return json.loads(body)
        except ValueError:
            return body

    def instances(self, service: str, group: str = "DEFAULT_GROUP", namespace: str = "") -> list[dict[str, Any]]:
        """The admin view (disabled instances included) of one service."""
        params = {"serviceName": service, "groupName": group, "clusterName": "DEFAULT", "pageNo": 1, "pageSize": 100}
        if namespace:
            params["namespaceId"] = namespace
        try:
            answer = self.call("GET", "/nacos/v1/ns/catalog/instances", params)
        except urllib.error.HTTPError as error:
            if error.code in (400, 404, 500):  # service not created yet
                return []
            raise
        return list(answer.get("list", []))

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.home, ignore_errors=True)
