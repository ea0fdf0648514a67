"""Validated run configuration of the two helper commands, built from arguments and environment variables.

Everything a command needs is read and checked here, before any network I/O starts, so a bad setting fails the
container at once with exit 2 and a message naming the setting, instead of half-running. Arguments override the
environment (the webhook sets env vars; a human debugging with ``kubectl debug`` passes arguments).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from helper import env
from helper.env import ConfigError
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


@dataclass(frozen=True, slots=True)
class PrewarmConfig:
    targets: tuple[Target, ...]
    policy: str = "warn"
    deadline: float = DEFAULT_PREWARM_DEADLINE
    timeout: float = DEFAULT_PREWARM_TIMEOUT
    ca_file: str | None = None
    insecure: bool = False
    output: str = "text"

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
    return PrewarmConfig(
        targets=parsed,
        policy=chosen_policy,
        deadline=chosen_deadline,
        timeout=min(chosen_timeout, chosen_deadline),
        ca_file=chosen_ca,
        insecure=chosen_insecure,
        output=output,
    )


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is going offline, as the broadcast and the logs name it (downward API values set by the webhook)."""

    pod: str
    namespace: str
    ip: str
    lane: str
    app: str


@dataclass(frozen=True, slots=True)
class AgentConfig:
    identity: Identity
    port: int = DEFAULT_AGENT_PORT
    app_host: str = "127.0.0.1"
    app_port: int | None = None
    ready_path: str | None = None
    ready_scheme: str = "http"
    warmup_window: float = 0.0
    curve: Curve = LINEAR
    curve_spec: str = "linear"
    warmup_requests: tuple[WarmupRequest, ...] = ()
    warmup_requests_deadline: float = DEFAULT_WARMUP_REQUESTS_DEADLINE
    drain: float = DEFAULT_DRAIN
    notify: tuple[HttpUrl, ...] = ()
    registries: tuple[str, ...] = BUILTIN_REGISTRIES

    @property
    def tls_at_start(self) -> bool:
        """Start-up opens TLS connections (an HTTPS app), or a third-party registry may (it may import ``ssl``)."""
        return self.ready_scheme == "https" or any(name not in BUILTIN_REGISTRIES for name in self.registries)

    @property
    def tls_at_prestop(self) -> bool:
        """Only the going-offline broadcast opens TLS connections (footprint.py loads OpenSSL then)."""
        return any(url.tls for url in self.notify)


def _ready_path(raw: str | None) -> str | None:
    value = env.text(raw)
    if value is not None and (not value.startswith("/") or any(c.isspace() or not c.isprintable() for c in value)):
        raise ConfigError(f"{env.APP_READY_PATH}={value[:40]!r}: want an absolute path, e.g. /healthz")
    return value


def _registries(raw: str | None) -> tuple[str, ...]:
    value = env.text(raw)
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
        app_host=env.text(get(env.APP_HOST)) or "127.0.0.1",
        app_port=app_port,
        ready_path=_ready_path(get(env.APP_READY_PATH)),
        ready_scheme=env.choice(env.APP_READY_SCHEME, get(env.APP_READY_SCHEME), "http", ("http", "https")),
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
        registries=_registries(get(env.REGISTRIES)),
    )
