"""The webhook -> helper contract: environment variable names and the typed, validated reading of their values.

The names are defined here once and mirrored in ``webhook/contract/names.py``; which setting each one carries, and its
default, is declared in ``webhook/contract/settings.py`` (the helper's own defaults, in helper/config.py, are held to
those by a unit test). Values are plain strings; durations are plain seconds (``"12.5"``), never Go-style
durations: the webhook owns that syntax and converts before injecting, and :func:`seconds` is the helper's only
reader of them. A value the helper cannot run with raises :class:`ConfigError`, which the CLI turns into exit status
2 with the message. Standard library only: the helper never imports the webhook.
"""

from __future__ import annotations

import math

# lanes-prewarm (init container)
PREWARM_TARGETS = "LANES_PREWARM_TARGETS"
PREWARM_POLICY = "LANES_PREWARM_POLICY"
PREWARM_DEADLINE = "LANES_PREWARM_DEADLINE"
PREWARM_TIMEOUT = "LANES_PREWARM_TIMEOUT"
PREWARM_CA_FILE = "LANES_PREWARM_CA_FILE"
PREWARM_INSECURE = "LANES_PREWARM_INSECURE"
POD_RESTART_POLICY = "LANES_POD_RESTART_POLICY"
"""The pod's ``spec.restartPolicy``: under ``Never`` the kubelet does not run a failed init container again."""

# lanes-agent (native sidecar)
AGENT_PORT = "LANES_AGENT_PORT"
APP_PORT = "LANES_APP_PORT"
APP_HOST = "LANES_APP_HOST"
APP_READY_PATH = "LANES_APP_READY_PATH"
APP_READY_SCHEME = "LANES_APP_READY_SCHEME"
APP_READY_HOST = "LANES_APP_READY_HOST"
"""The handed-over probe's ``httpGet.host``: the kubelet dials it instead of the pod IP."""
APP_READY_HEADERS = "LANES_APP_READY_HEADERS"
"""The handed-over probe's ``httpGet.httpHeaders`` as JSON ``[{"name": ..., "value": ...}]``."""
WARMUP = "LANES_WARMUP"
WARMUP_CURVE = "LANES_WARMUP_CURVE"
WARMUP_REQUESTS = "LANES_WARMUP_REQUESTS"
WARMUP_REQUESTS_DEADLINE = "LANES_WARMUP_REQUESTS_DEADLINE"
DRAIN = "LANES_DRAIN"
OFFLINE_NOTIFY = "LANES_OFFLINE_NOTIFY"
REGISTRIES = "LANES_REGISTRIES"
REGISTRY = "LANES_REGISTRY"
"""``lanes.io/registry``: an external registry URL (``nacos://...``, helper/registries/nacos_url.py)."""
REGISTRY_USERNAME = "LANES_REGISTRY_USERNAME"
REGISTRY_PASSWORD = "LANES_REGISTRY_PASSWORD"
REGISTRY_ACCESS_TOKEN = "LANES_REGISTRY_ACCESS_TOKEN"
"""Credentials of the registry: env ``valueFrom.secretKeyRef`` of the Secret named by ``lanes.io/registry-secret``."""
REGISTER_DELAY = "LANES_REGISTER_DELAY"
"""``lanes.io/register-delay``: seconds after ready before the agent puts the pod into an external registry."""

# identity (downward API and resolved config)
LANE = "LANES_LANE"
APP = "LANES_APP"
POD_NAME = "LANES_POD_NAME"
POD_NAMESPACE = "LANES_POD_NAMESPACE"
POD_IP = "LANES_POD_IP"
POD_IPS = "LANES_POD_IPS"
"""Downward API ``status.podIPs``: comma-separated, one per IP family (the agent tries each to reach the app)."""

MAX_SECONDS = 86_400.0
"""Upper bound for any duration: more than a day is a unit mistake (milliseconds passed as seconds), not a plan."""


class ConfigError(ValueError):
    """A setting the helper cannot run with. The message names the setting and the bad value."""


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")


def text(raw: str | None) -> str | None:
    """An optional string setting: unset and blank are the same (the webhook never injects blank values)."""
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def seconds(name: str, raw: str | None, default: float, *, positive: bool = False) -> float:
    """Plain seconds between 0 (or > 0 when ``positive``) and a day; unset or blank means ``default``."""
    value = text(raw)
    if value is None:
        return default
    lowest = "more than 0" if positive else "0"
    hint = f"{name}={_shown(value)}: want plain seconds, {lowest} to {MAX_SECONDS:g}, e.g. 20"
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(hint) from None
    if not math.isfinite(number) or number < 0 or number > MAX_SECONDS or (positive and number == 0):
        raise ConfigError(hint)
    return number


def port(name: str, raw: str | None, default: int | None) -> int | None:
    """A TCP port 1..65535; unset or blank means ``default``."""
    value = text(raw)
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ConfigError(f"{name}={_shown(value)}: want a port number 1..65535, e.g. 8080")
    return int(value)


def choice(name: str, raw: str | None, default: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (case-insensitive); unset or blank means ``default``."""
    value = text(raw)
    if value is None:
        return default
    if value.lower() not in allowed:
        raise ConfigError(f"{name}={_shown(value)}: want one of {', '.join(allowed)}")
    return value.lower()


def flag(name: str, raw: str | None) -> bool:
    """A boolean switch: true/false, 1/0, yes/no; unset or blank means false."""
    value = text(raw)
    if value is None:
        return False
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={_shown(value)}: want true or false")
