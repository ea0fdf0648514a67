"""Nacos as a registry of the agent: the pod's instance goes into service only once the pod can take traffic.

Two modes (``mode=`` in ``lanes.io/registry``, see nacos_url.py):

- ``register``: the agent owns the instance (apps that do not register themselves, in any language). It registers
  the pod once it is ready and past its register delay, at the floor of the warm-up ramp, keeps the instance
  alive with a heartbeat every ``clientBeatInterval`` (5 s; an HTTP-registered ephemeral instance of a 2.x server
  is unhealthy after 15 s and removed after 30 s without one; re-registered if a beat finds it gone, e.g. after a
  Nacos restart), and removes it at preStop (heartbeats stopped first);
- ``manage``: the app registers itself (Spring Cloud Alibaba, Dubbo) as soon as it starts, long before it can
  serve. From its first second the agent looks for that instance (pod IP and port) and disables it the moment it
  shows up; once the pod is ready and past its delay it enables it at the floor of the ramp (plus the lane
  metadata), ramps the weight, and disables it again at preStop. It never deletes the app's instance: for a
  gRPC-registered instance DELETE answers ``ok`` and does nothing.

Metadata: ``lane=<lane>``, ``lanes.pod=<pod>``, and ``dubbo.tag=<lane>`` for lanes other than ``base``: Dubbo's tag
router reads ``dubbo.tag`` from the provider URL, which Dubbo's Nacos registry builds from instance metadata
(a request without a tag only goes to untagged providers, so the base lane stays untagged).

Failures never hold up the pod: readiness does not wait for Nacos, every call is bounded (``REQUEST_TIMEOUT``),
start-up retries with a capped backoff in the background, and the offline sequence bounds ``deregister``. Each
distinct problem is logged once (not once per retry), and every call is counted by operation and result
(``lanes_agent_registry_operations_total``). Rejected credentials are one ``error`` line naming the user.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping

from helper import aio, env, jsonlog
from helper.backoff import Backoff
from helper.env import ConfigError
from helper.http.client import Connection, fetch
from helper.record import record
from helper.registries import nacos_api as api
from helper.registries.nacos_url import NacosTarget, RegistryUrlError, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from helper.config import AgentConfig

REQUEST_TIMEOUT = 3.0
"""Seconds one call to Nacos may take; the offline sequence cuts ``deregister`` shorter if the drain is shorter."""
DEFAULT_BEAT_INTERVAL = 5.0
TOKEN_REFRESH = 0.8
"""Log in again once this share of the token's lifetime has passed."""
HOLD_POLL = 0.25
"""manage mode polls the instance list at most this far apart until the pod is ready: the exposure bound of the
app's early registration is this plus a request and two pushes."""
RESOURCE_NOT_FOUND = 20404
"""The ``code`` of a heartbeat answer when the server no longer knows the instance."""


class NacosError(OSError):
    """Nacos answered with an error (``status``) or could not be reached (``status`` 0)."""

    def __init__(self, message: str, status: int = 0, reason: str = "error") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        """Metric label: ``unreachable``, ``rejected`` (credentials), ``not_found``, ``error``."""


@record(frozen=True, slots=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    access_token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Credentials:
        return cls(
            env.text(environ.get(env.REGISTRY_USERNAME)),
            env.text(environ.get(env.REGISTRY_PASSWORD)),
            env.text(environ.get(env.REGISTRY_ACCESS_TOKEN)),
        )

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(username={self.username!r}, password={'***' if self.password else None})"


class NacosClient:
    """Calls to one Nacos server over the helper's HTTP client: one keep-alive connection, logins as needed."""

    def __init__(self, target: NacosTarget, credentials: Credentials) -> None:
        self.target = target
        self.credentials = credentials
        self._connection = Connection(target.host, target.port, _host_header(target))
        self._lock = aio.Lock()
        self._token: str | None = credentials.access_token
        self._token_expires = float("inf")

    async def call(self, call: api.Call, *, fresh: bool = False) -> Any:
        """Send ``call`` (on its own connection when ``fresh``); the decoded JSON or text answer."""
        token = await self._valid_token()
        status, body = await self._send(call, token, fresh=fresh)
        if status == 403 and self.credentials.username and self.credentials.password:
            self._token = None  # expired or revoked: log in again, once
            status, body = await self._send(call, await self._valid_token(), fresh=fresh)
        return _decode(call, status, body)

    async def _send(self, call: api.Call, token: str | None, *, fresh: bool) -> tuple[int, bytes]:
        headers = call.headers + ((("accessToken", token),) if token else ())
        try:
            if fresh:
                response = await fetch(
                    self.target.host, self.target.port, call.method, call.path, timeout=REQUEST_TIMEOUT,
                    host_header=_host_header(self.target), headers=headers, body=call.body,
                )  # fmt: skip
            else:
                async with self._lock:
                    response = await self._connection.request(
                        call.method, call.path, timeout=REQUEST_TIMEOUT, headers=headers, body=call.body
                    )
        except TimeoutError:
            message = f"no answer from {self.target.origin} within {REQUEST_TIMEOUT:g}s"
            raise NacosError(message, reason="timeout") from None
        except OSError as error:
            detail = error.strerror or str(error) or type(error).__name__
            raise NacosError(f"cannot reach {self.target.origin}: {detail}", reason="unreachable") from None
        return response.status, response.body

    async def _valid_token(self) -> str | None:
        creds = self.credentials
        if not (creds.username and creds.password):
            return creds.access_token
        if self._token is not None and time.monotonic() < self._token_expires:
            return self._token
        call = api.login(self.target, creds.username, creds.password)
        status, body = await self._send(call, None, fresh=False)
        if status in (401, 403):
            raise NacosError(
                f"{self.target.origin} rejected the credentials of user {creds.username!r}"
                f" (HTTP {status}: {_snippet(body)}); check the Secret named by lanes.io/registry-secret",
                status,
                reason="rejected",
            )
        answer = _decode(call, status, body)
        if isinstance(answer, dict) and isinstance(answer.get("data"), dict):
            answer = answer["data"]
        if not isinstance(answer, dict) or not answer.get("accessToken"):
            raise NacosError(f"login at {self.target.origin} answered no accessToken: {str(answer)[:80]!r}")
        self._token = str(answer["accessToken"])
        ttl = float(answer.get("tokenTtl") or 18000)
        self._token_expires = time.monotonic() + ttl * TOKEN_REFRESH
        return self._token

    def close(self) -> None:
        self._connection.close()


def _host_header(target: NacosTarget) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}"


def _snippet(body: bytes) -> str:
    return body[:120].decode("utf-8", "replace").strip()


def _decode(call: api.Call, status: int, body: bytes) -> Any:
    if status >= 400:
        reason = "rejected" if status in (401, 403) else "not_found" if b"no matched ip" in body else "error"
        raise NacosError(f"{call.method} {call.path.split('?')[0]}: HTTP {status}: {_snippet(body)}", status, reason)
    text = body.decode("utf-8", "replace")
    try:
        answer = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(answer, dict) and isinstance(answer.get("code"), int) and answer["code"] not in (0, 200, 10200):
        if answer["code"] == RESOURCE_NOT_FOUND:
            return answer
        raise NacosError(f"{call.method} {call.path.split('?')[0]}: code {answer['code']}: {answer.get('message')}")
    return answer


Counter = Callable[[str, str, str], None]
"""(registry, operation, result) -> None: how the registry counts its calls into the agent's metrics."""


class NacosRegistry:
    """The pod's instance in one Nacos service (see the module docstring for what each mode does)."""

    name = "nacos"

    def __init__(self, target: NacosTarget, ip: str, port: int, lane: str, pod: str, credentials: Credentials):
        self.target = target
        self.ip = ip
        self.port = port
        self.client = NacosClient(target, credentials)
        self.metadata = {"lane": lane, "lanes.pod": pod}
        if lane != "base":
            self.metadata["dubbo.tag"] = lane
        self.full_weight = target.weight or 1.0
        self.weight: float | None = None
        self.enabled: bool | None = None
        self.registered = False
        self.outcome: dict[str, Any] = {"state": "waiting"}
        self.count: Counter = lambda registry, operation, result: None
        self._beats: aio.Task[None] | None = None
        self._logged: set[str] = set()
        self.held_at: float | None = None
        """When manage mode first disabled the app's own registration (unix time)."""

    # --- the agent's registry interface -------------------------------------------------------------------

    async def hold(self) -> None:
        """manage mode, from the agent's start until cancelled: keep the app's own instance out of service."""
        if self.target.mode != "manage":
            return
        self.outcome = {"state": "holding"}
        polls = Backoff(first=0.05, cap=HOLD_POLL)  # quick at first (the app registers within seconds), then steady
        errors = Backoff(first=0.5, cap=5.0)
        while True:
            try:
                mine = await self._find()
                if mine is not None and mine.get("enabled", True):
                    self._adopt_weight(mine)
                    await self._call("hold", api.patch(self.target, self.ip, self.port, weight=self._weight(1.0),
                                                       enabled=False))  # fmt: skip
                    self.enabled = False
                    if self.held_at is None:
                        self.held_at = time.time()
                    jsonlog.info("nacos: took the app's own registration out of service until the pod is ready",
                                 service=self.target.service, ip=self.ip, port=self.port)  # fmt: skip
                wait = polls.next_delay()
                errors.reset()
            except NacosError as error:
                self._problem("hold", error)
                wait = errors.next_delay()
            await aio.sleep(wait)

    async def register(self, fraction: float) -> str:
        """Put the instance in service at ``fraction`` of its full weight; raises NacosError (the caller retries)."""
        if self.target.mode == "manage":
            # no lookup: a disabled instance is hidden from the list; PATCH fails while the app has not registered
            weight = self._weight(fraction)
            await self._call("register", api.patch(self.target, self.ip, self.port, weight=weight, enabled=True,
                                                   metadata=self.metadata))  # fmt: skip
            detail = f"enabled the app's instance {self.ip}:{self.port} at weight {weight:g}"
        else:
            weight = self._weight(fraction)
            self.registered = True  # before the POST: one cut off in flight may still land, so preStop must DELETE
            await self._call("register", api.register(self.target, self.ip, self.port, weight, self.metadata))
            self._start_beats()
            try:  # an instance's old settings outlive it: a pod reusing an IP would come back disabled
                await self._call("enable", api.patch(self.target, self.ip, self.port, weight=weight, enabled=True,
                                                     metadata=self.metadata if self.target.api == "v3" else None))
            except NacosError as error:
                self._problem("enable", error)
            detail = f"registered {self.ip}:{self.port} at weight {weight:g}"
        self.registered, self.weight, self.enabled = True, weight, True
        self.outcome = {"state": "in_service", "weight": weight, "since": jsonlog.timestamp()}
        jsonlog.info(f"nacos: {detail}", service=self.target.service, mode=self.target.mode)
        return detail

    async def set_weight(self, fraction: float) -> None:
        """Move the weight to ``fraction`` of the full weight (the warm-up ramp); enabled stays true."""
        weight = self._weight(fraction)
        await self._call("weight", api.patch(self.target, self.ip, self.port, weight=weight, enabled=True,
                                             metadata=self.metadata if self.target.api == "v3" else None))  # fmt: skip
        self.weight = weight
        self.outcome["weight"] = weight

    async def deregister(self) -> str:
        """Take the instance out of service: DELETE it (register mode) or disable it (manage mode)."""
        if self._beats is not None:
            self._beats.cancel()
        try:
            if self.target.mode == "manage":
                weight = self.weight if self.weight is not None else self._weight(1.0)
                await self._call("deregister", api.patch(self.target, self.ip, self.port, weight=weight,
                                                         enabled=False), fresh=True)  # fmt: skip
                detail = f"disabled the app's instance {self.ip}:{self.port} in {self.target.service}"
            elif not self.registered:
                detail = "never registered (the pod went offline first): nothing to remove"
            else:
                await self._call("deregister", api.deregister(self.target, self.ip, self.port), fresh=True)
                detail = f"removed {self.ip}:{self.port} from {self.target.service}"
        except NacosError as error:
            self.outcome = {"state": "deregister_failed", "error": str(error)}
            raise
        except aio.CancelledError:
            self.outcome = {"state": "deregister_cut_off"}
            raise
        self.registered, self.enabled = False, False
        self.outcome = {"state": "out_of_service", "detail": detail, "since": jsonlog.timestamp()}
        return detail

    def status(self) -> dict[str, Any]:
        """What /status shows for this registry."""
        target = self.target
        return {
            "registry": self.name,
            "server": target.origin,
            "api": target.api,
            "mode": target.mode,
            "service": target.service,
            "group": target.group,
            "namespace": target.namespace or "public",
            "cluster": target.cluster,
            "instance": f"{self.ip}:{self.port}",
            "metadata": self.metadata,
            **self.outcome,
        }

    # --- internals -----------------------------------------------------------------------------------------

    def _weight(self, fraction: float = 0.0) -> float:
        """``fraction`` of the full weight, kept within Nacos's accepted range (>= 0.01, 6 decimals)."""
        return round(max(0.01, self.full_weight * max(0.0, min(1.0, fraction))), 6)

    def _adopt_weight(self, instance: Mapping[str, Any]) -> None:
        """manage mode: the app's own weight is the full weight of the ramp (unless the URL names one)."""
        if self.target.weight is not None or self.weight is not None or self.enabled is False:
            return
        weight = instance.get("weight")
        if isinstance(weight, int | float) and weight > 0:
            self.full_weight = float(weight)

    async def _find(self) -> dict[str, Any] | None:
        answer = await self._call("find", api.find(self.target))
        for host in api.hosts(self.target, answer):
            if str(host.get("ip")) == self.ip and str(host.get("port")) == str(self.port):
                return host
        return None

    async def _call(self, operation: str, call: api.Call, *, fresh: bool = False) -> Any:
        try:
            answer = await self.client.call(call, fresh=fresh)
        except NacosError as error:
            self.count(self.name, operation, error.reason)
            raise
        self.count(self.name, operation, "ok")
        return answer

    def _problem(self, operation: str, error: NacosError) -> None:
        """Log a problem once per distinct message (retries of the same failure stay quiet)."""
        key = f"{operation}:{error}"
        if key in self._logged:
            return
        self._logged.add(key)
        level = jsonlog.error if error.reason == "rejected" else jsonlog.warning
        level(f"nacos {operation} failed", error=str(error), reason=error.reason, service=self.target.service)
        self.outcome["last_error"] = str(error)

    def _start_beats(self) -> None:
        call = api.heartbeat(self.target, self.ip, self.port)
        if call is not None and (self._beats is None or self._beats.done()):
            self._beats = aio.get_running_loop().create_task(self._beat_loop(call))

    async def _beat_loop(self, call: api.Call) -> None:
        interval = DEFAULT_BEAT_INTERVAL
        while True:
            await aio.sleep(interval)
            try:
                answer = await self._call("heartbeat", call)
                if isinstance(answer, dict):
                    interval = max(1.0, float(answer.get("clientBeatInterval") or 5000) / 1000)
                    if answer.get("code") == RESOURCE_NOT_FOUND:  # the server lost it (restart, expiry)
                        jsonlog.warning("nacos: the instance is gone from the server; registering it again",
                                        service=self.target.service)  # fmt: skip
                        weight = self.weight if self.weight is not None else self._weight()
                        await self._call("register", api.register(self.target, self.ip, self.port, weight,
                                                                  self.metadata))  # fmt: skip
            except NacosError as error:
                self._problem("heartbeat", error)

    def report(self, operation: str, error: NacosError) -> None:
        """Called by the online step for failures it retries."""
        self._problem(operation, error)


def from_config(config: AgentConfig, environ: Mapping[str, str] | None = None) -> NacosRegistry:
    """The registry named by ``LANES_REGISTRY``; ConfigError (exit 2) on anything it cannot run with."""
    environ = os.environ if environ is None else environ
    raw = config.registry
    if raw is None:
        raise ConfigError(f"{env.REGISTRIES} names nacos but {env.REGISTRY} is not set")
    try:
        target = parse(raw).for_app(config.identity.app)
    except RegistryUrlError as error:
        raise ConfigError(f"{env.REGISTRY}: {error}") from None
    ip = config.identity.ip or (config.pod_ips[0] if config.pod_ips else "")
    if not ip:
        raise ConfigError(f"{env.REGISTRY}: {env.POD_IP} is not set: Nacos needs the pod IP")
    port = target.instance_port or config.app_port
    if port is None:
        raise ConfigError(f"{env.REGISTRY}: no port= in the URL and no {env.APP_PORT}: which port to register?")
    credentials = Credentials.from_env(environ)
    if bool(credentials.username) != bool(credentials.password):
        raise ConfigError(f"{env.REGISTRY_USERNAME} and {env.REGISTRY_PASSWORD} go together: set both or neither")
    return NacosRegistry(target, ip, port, config.identity.lane, config.identity.pod, credentials)
