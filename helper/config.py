"""Validated run configuration of the two helper commands, built from arguments and environment variables.

Everything a command needs is read and checked here, before any network I/O starts, so a bad setting fails the
container at once with exit 2 and a message naming the setting, instead of half-running. Arguments override the
environment (the webhook sets env vars; a human debugging with ``kubectl debug`` passes arguments).
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence

from helper import env
from helper.env import ConfigError
from helper.record import record
from helper.specs import (
    HttpUrl,
    SpecError,
    Target,
    WarmupRequest,
    parse_curve,
    parse_targets,
    parse_urls,
    parse_warmup_requests,
)
from helper.warmup import LINEAR, Curve

DEFAULT_AGENT_PORT = 15400
DEFAULT_PREWARM_DEADLINE = 60.0
DEFAULT_PREWARM_TIMEOUT = 5.0
DEFAULT_DRAIN = 10.0
DEFAULT_WARMUP_REQUESTS_DEADLINE = 60.0
BUILTIN_REGISTRIES = ("kubernetes",)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")


def _spec(name: str, raw: str | None, parse: Callable[[str], T]) -> T | None:
    """Parse an optional spec setting; the SpecError message is prefixed with the setting's name."""
    value = env.text(raw)
    if value is None:
        return None
    try:
        return parse(value)
    except SpecError as error:
        raise ConfigError(f"{name}: {error}") from None


@record(frozen=True, slots=True)
class PrewarmConfig:
    targets: tuple[Target, ...]
    policy: str = "warn"
    deadline: float = DEFAULT_PREWARM_DEADLINE
    timeout: float = DEFAULT_PREWARM_TIMEOUT
    ca_file: str | None = None
    insecure: bool = False
    output: str = "text"
    restarts: bool = True
    """The kubelet runs the init container again after a failure (the pod's restartPolicy is not ``Never``)."""

    @property
    def needs_tls(self) -> bool:
        return any(target.kind == "https" for target in self.targets)


def prewarm_config(
    targets: Sequence[str] = (),
    *,
    policy: str | None = None,
    deadline: str | None = None,
    timeout: str | None = None,
    ca_file: str | None = None,
    insecure: bool = False,
    output: str = "text",
    environ: Mapping[str, str] | None = None,
) -> PrewarmConfig:
    """Arguments first, then ``LANES_PREWARM_*``; raises ConfigError (naming the setting) on any bad value."""
    environ = os.environ if environ is None else environ

    def pick(arg: str | None, flag_name: str, env_name: str) -> tuple[str, str | None]:
        return (flag_name, arg) if arg is not None else (env_name, environ.get(env_name))

    if targets:
        parsed = tuple(t for target in targets for t in _spec("TARGET", target, parse_targets) or ())
    else:
        parsed = _spec(env.PREWARM_TARGETS, environ.get(env.PREWARM_TARGETS), parse_targets) or ()
    if not parsed:
        raise ConfigError(f"no prewarm targets: pass TARGET arguments or set {env.PREWARM_TARGETS}")
    chosen_policy = env.choice(*pick(policy, "--policy", env.PREWARM_POLICY), "warn", ("warn", "require"))
    chosen_deadline = env.seconds(
        *pick(deadline, "--deadline", env.PREWARM_DEADLINE), DEFAULT_PREWARM_DEADLINE, positive=True
    )
    chosen_timeout = env.seconds(
        *pick(timeout, "--timeout", env.PREWARM_TIMEOUT), DEFAULT_PREWARM_TIMEOUT, positive=True
    )
    ca_name, ca_raw = pick(ca_file, "--ca-file", env.PREWARM_CA_FILE)
    chosen_ca = env.text(ca_raw)
    if chosen_ca is not None and not (os.path.isfile(chosen_ca) and os.access(chosen_ca, os.R_OK)):
        raise ConfigError(f"{ca_name}={chosen_ca!r}: not a readable file")
    chosen_insecure = insecure or env.flag(env.PREWARM_INSECURE, environ.get(env.PREWARM_INSECURE))
    restart_policy = env.choice(
        env.POD_RESTART_POLICY, environ.get(env.POD_RESTART_POLICY), "always", ("always", "onfailure", "never")
    )
    return PrewarmConfig(
        targets=parsed,
        policy=chosen_policy,
        deadline=chosen_deadline,
        timeout=min(chosen_timeout, chosen_deadline),
        ca_file=chosen_ca,
        insecure=chosen_insecure,
        output=output,
        restarts=restart_policy != "never",
    )


@record(frozen=True, slots=True)
class Identity:
    """Who is going offline, as the broadcast and the logs name it (downward API values set by the webhook)."""

    pod: str
    namespace: str
    ip: str
    lane: str
    app: str


@record(frozen=True, slots=True)
class AgentConfig:
    identity: Identity
    port: int = DEFAULT_AGENT_PORT
    app_host: str | None = None
    """``LANES_APP_HOST``: the one address to reach the app at (debugging); unset, the kubelet's order applies."""
    app_port: int | None = None
    ready_path: str | None = None
    ready_scheme: str = "http"
    ready_host: str | None = None
    ready_headers: tuple[tuple[str, str], ...] = ()
    pod_ips: tuple[str, ...] = ()
    warmup_window: float = 0.0
    curve: Curve = LINEAR
    curve_spec: str = "linear"
    warmup_requests: tuple[WarmupRequest, ...] = ()
    warmup_requests_deadline: float = DEFAULT_WARMUP_REQUESTS_DEADLINE
    drain: float = DEFAULT_DRAIN
    notify: tuple[HttpUrl, ...] = ()
    registries: tuple[str, ...] = BUILTIN_REGISTRIES
    registry: str | None = None
    """``LANES_REGISTRY``, the external registry URL, parsed by its registry (helper/registries/nacos.py)."""
    register_delay: float = 0.0

    @property
    def app_hosts(self) -> tuple[str, ...]:
        """Where to look for the app, in order: like the kubelet's probe (its host, else the pod), loopback first.

        The kubelet dials ``httpGet.host`` or the pod IP. Inside the pod, loopback reaches an app bound to
        0.0.0.0, ``::`` or localhost and never leaves the network namespace, so it comes first; an app bound only
        to its pod IP (or only to IPv6) is found at the next address.
        """
        if self.app_host is not None:
            return (self.app_host,)
        if self.ready_host is not None:
            return (self.ready_host,)
        pod = self.pod_ips or ((self.identity.ip,) if self.identity.ip else ())
        return tuple(dict.fromkeys(("127.0.0.1", "::1", *pod)))

    @property
    def probe_host(self) -> str | None:
        """The host the kubelet's probe URL names (``httpGet.host``, else the pod IP), for the Host header."""
        return self.ready_host or self.identity.ip or (self.pod_ips[0] if self.pod_ips else None)


def _ready_path(raw: str | None) -> str | None:
    value = env.text(raw)
    if value is not None and (not value.startswith("/") or any(c.isspace() or not c.isprintable() for c in value)):
        raise ConfigError(f"{env.APP_READY_PATH}={value[:40]!r}: want an absolute path, e.g. /healthz")
    return value


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP field name (RFC 9110 token), as the API server validates httpHeaders names."""


def _ready_headers(raw: str | None) -> tuple[tuple[str, str], ...]:
    """``[{"name": "Cookie", "value": "a=b"}, ...]`` (the probe's httpHeaders, in order; names may repeat)."""
    value = env.text(raw)
    if value is None:
        return ()
    hint = f'{env.APP_READY_HEADERS}: want a JSON list like [{{"name": "Host", "value": "shop.example"}}]'
    try:
        items = json.loads(value)
    except ValueError:
        raise ConfigError(f"{hint}; not JSON: {value[:40]!r}") from None
    if not isinstance(items, list):
        raise ConfigError(hint)
    headers = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        text = item.get("value", "") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _TOKEN.fullmatch(name) or not isinstance(text, str):
            raise ConfigError(f"{hint}; bad entry {json.dumps(item)[:60]}")
        if any(c in text for c in "\r\n\x00"):
            raise ConfigError(f"{env.APP_READY_HEADERS}: header {name!r} has a line break in its value")
        headers.append((name, text))
    return tuple(headers)


def _is_ip(text: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
        except OSError:
            continue
        return True
    return False


def _pod_ips(raw: str | None) -> tuple[str, ...]:
    value = env.text(raw)
    if value is None:
        return ()
    ips = tuple(part.strip() for part in value.split(",") if part.strip())
    for ip in ips:
        if not _is_ip(ip):
            raise ConfigError(f"{env.POD_IPS}={value[:60]!r}: {ip[:40]!r} is not an IP address")
    return ips


def _ready_host(raw: str | None) -> str | None:
    value = env.text(raw)
    if value is None:
        return None
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if not host or any(c.isspace() or c in "/?#@[]" or not c.isprintable() for c in host):
        raise ConfigError(f"{env.APP_READY_HOST}={value[:40]!r}: want a host name or IP address")
    return host


def _registries(raw: str | None, registry: str | None = None) -> tuple[str, ...]:
    """``LANES_REGISTRIES``, plus the scheme of ``LANES_REGISTRY`` (``nacos://...`` adds ``nacos``)."""
    value = env.text(raw)
    if registry is not None:
        scheme = registry.partition("://")[0].lower()
        if not scheme.isalnum():
            raise ConfigError(f"{env.REGISTRY}={registry[:40]!r}: want a registry URL, e.g. nacos://nacos.infra:8848")
        names = _registries(raw)
        return names if scheme in names else (*names, scheme)
    if value is None:
        return BUILTIN_REGISTRIES
    names = tuple(dict.fromkeys(name.strip().lower() for name in value.split(",") if name.strip()))
    for name in names:
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"{env.REGISTRIES}={value[:40]!r}: want a comma list of names, e.g. kubernetes")
    return names


def agent_config(*, port: str | None = None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """The agent's configuration from ``LANES_*`` (``--port`` overrides ``LANES_AGENT_PORT``)."""
    environ = os.environ if environ is None else environ
    get = environ.get
    agent_port = env.port(*(("--port", port) if port is not None else (env.AGENT_PORT, get(env.AGENT_PORT))), None)
    app_port = env.port(env.APP_PORT, get(env.APP_PORT), None)
    curve_spec = env.text(get(env.WARMUP_CURVE)) or "linear"
    curve = _spec(env.WARMUP_CURVE, curve_spec, parse_curve) or LINEAR
    requests = _spec(env.WARMUP_REQUESTS, get(env.WARMUP_REQUESTS), parse_warmup_requests) or ()
    if requests and app_port is None:
        raise ConfigError(f"{env.WARMUP_REQUESTS} is set but {env.APP_PORT} is not: no port to warm up")
    identity = Identity(
        pod=env.text(get(env.POD_NAME)) or socket.gethostname(),
        namespace=env.text(get(env.POD_NAMESPACE)) or "",
        ip=env.text(get(env.POD_IP)) or "",
        lane=env.text(get(env.LANE)) or "base",
        app=env.text(get(env.APP)) or "",
    )
    return AgentConfig(
        identity=identity,
        port=agent_port or DEFAULT_AGENT_PORT,
        app_host=env.text(get(env.APP_HOST)),
        app_port=app_port,
        ready_path=_ready_path(get(env.APP_READY_PATH)),
        ready_scheme=env.choice(env.APP_READY_SCHEME, get(env.APP_READY_SCHEME), "http", ("http", "https")),
        ready_host=_ready_host(get(env.APP_READY_HOST)),
        ready_headers=_ready_headers(get(env.APP_READY_HEADERS)),
        pod_ips=_pod_ips(get(env.POD_IPS)),
        warmup_window=env.seconds(env.WARMUP, get(env.WARMUP), 0.0),
        curve=curve,
        curve_spec=curve_spec,
        warmup_requests=requests,
        warmup_requests_deadline=env.seconds(
            env.WARMUP_REQUESTS_DEADLINE,
            get(env.WARMUP_REQUESTS_DEADLINE),
            DEFAULT_WARMUP_REQUESTS_DEADLINE,
            positive=True,
        ),
        drain=env.seconds(env.DRAIN, get(env.DRAIN), DEFAULT_DRAIN),
        notify=_spec(env.OFFLINE_NOTIFY, get(env.OFFLINE_NOTIFY), parse_urls) or (),
        registries=_registries(get(env.REGISTRIES), env.text(get(env.REGISTRY))),
        registry=env.text(get(env.REGISTRY)),
        register_delay=env.seconds(env.REGISTER_DELAY, get(env.REGISTER_DELAY), 0.0),
    )
