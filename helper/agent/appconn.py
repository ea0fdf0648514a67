"""How the agent reaches the app container it serves: same pod, so the same network namespace.

The agent connects to ``LANES_APP_HOST`` (default 127.0.0.1) but presents itself the way the kubelet's probes do
(``Host: <pod IP>:<port>``), so an app that validates Host headers accepts the agent's requests exactly when it
accepts its probes. An HTTPS app is spoken to without certificate verification, as the kubelet's HTTPS probes do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from helper.config import AgentConfig
from helper.http.client import Connection

if TYPE_CHECKING:
    import ssl


def host_header(config: AgentConfig) -> str:
    host = config.identity.ip or config.app_host
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{config.app_port}"


def tls_context(config: AgentConfig) -> ssl.SSLContext | None:
    if config.ready_scheme != "https":
        return None
    from helper.http import tls

    return tls.unverified_context()


def connection(config: AgentConfig, context: ssl.SSLContext | None) -> Connection:
    """A keep-alive connection to the app (opened lazily on the first request)."""
    assert config.app_port is not None, "callers check that an app port is configured"
    return Connection(config.app_host, config.app_port, host_header(config), tls=context)
