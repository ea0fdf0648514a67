"""How the agent reaches the app container it serves (same pod, so the same network namespace), like the kubelet.

The kubelet's httpGet probe dials ``httpGet.host`` or else the pod IP, sends ``Host: <that host>:<port>`` unless
``httpHeaders`` carries a Host header (which then wins), the probe's other headers, ``Accept: */*`` unless
overridden, on a fresh connection each time (keep-alives disabled), and speaks HTTPS without verifying the
certificate (kubernetes pkg/probe/http/request.go and http.go). The agent does the same, with one difference in
where it dials: without a probe host it tries 127.0.0.1, then ::1, then each pod IP (``LANES_POD_IPS``), and
remembers the first that accepts until the app is lost. Loopback first, because it reaches apps bound to 0.0.0.0,
``::`` or localhost without leaving the pod's network namespace; the pod IPs find apps bound only to them, and ::1
finds IPv6-only apps.
"""

from __future__ import annotations

import socket

from helper import aio
from helper.config import AgentConfig
from helper.http.client import (
    STATUS_LINE,
    Connection,
    HttpError,
    NoResponse,
    encode_request,
    read_response,
)
from helper.http.dial import dial, dial_host
from helper.http.dns import Address, numeric_family
from helper.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def tls_context(config: AgentConfig) -> ssl.SSLContext | None:
    if config.ready_scheme != "https":
        return None
    from helper.http import tls

    return tls.unverified_context()


@record
class App:
    """The app as the agent reaches it: where it was found, the Host header, the probe's headers."""

    config: AgentConfig
    tls: ssl.SSLContext | None = None
    address: str | None = None
    """The address that last accepted (None until found, and again once the app is lost)."""
    _probe_headers: tuple[tuple[str, str], ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        given = [(name, value) for name, value in self.config.ready_headers if name.lower() != "host"]
        self._probe_headers = (*given, ("Connection", "close"))

    @property
    def port(self) -> int:
        assert self.config.app_port is not None, "callers check that an app port is configured"
        return self.config.app_port

    @property
    def host_header(self) -> str:
        """``httpHeaders``' Host if the probe has one, else ``<probe host or pod IP>:<port>`` as the kubelet sends."""
        for name, value in self.config.ready_headers:
            if name.lower() == "host" and value:
                return value
        host = self.config.probe_host or self.address or "127.0.0.1"
        return f"{_bracketed(host)}:{self.port}"

    def forget(self) -> None:
        """The app went away: look for it everywhere again (it may come back bound elsewhere)."""
        self.address = None

    @property
    def server_name(self) -> str | None:
        """SNI for an HTTPS app: the probe host when it is a name (Go sends none for IP addresses either)."""
        host = self.config.ready_host
        return host if host is not None and numeric_family(host) is None else None

    async def open(self, timeout: float, *, tls: bool = True) -> tuple[aio.StreamReader, aio.StreamWriter]:
        """A new connection (TLS for an HTTPS app unless ``tls=False``): to the remembered address, else to the
        first candidate that accepts."""
        hosts = (self.address,) if self.address is not None else self.config.app_hosts
        if len(hosts) == 1 and numeric_family(hosts[0]) is None:  # a probe host that is a name: resolve it
            reader, writer, _ = await dial_host(hosts[0], self.port, timeout)
            self.address = hosts[0]
        else:
            addresses = [Address(numeric_family(host) or 0, host, self.port) for host in hosts]
            reader, writer, found = await dial(addresses, timeout)
            self.address = found.host
        if tls and self.tls is not None:
            try:
                await writer.start_tls(self.tls, server_hostname=self.server_name)
            except BaseException:
                writer.transport.abort()
                raise
        return reader, writer

    async def probe(self, path: str, timeout: float) -> int:
        """The status of one GET of ``path`` sent the way the kubelet's probe sends it, on its own connection."""
        request = encode_request("GET", path, self.host_header, self._probe_headers)
        async with aio.timeout(timeout):
            family = numeric_family(self.address) if self.address is not None else None
            if family is not None and self.tls is None:
                status = await self._bare_status(family, request)
                if status is not None:
                    return status
            reader, writer = await self.open(timeout)
            try:
                writer.write(request)
                await writer.drain()
                return (await read_response(reader, method="GET", head_only=True)).status
            finally:
                writer.transport.abort()

    async def _bare_status(self, family: int, request: bytes) -> int | None:
        """The check of a ready plain-HTTP app, every 2 seconds for the pod's life, on a bare socket: the status line
        is all it reads (a third of the CPU of a stream connection). None for an interim 1xx answer: the caller
        asks again with the full parser."""
        loop = aio.get_running_loop()
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, (self.address, self.port))
            await loop.sock_sendall(sock, request)
            head = b""
            while b"\r\n" not in head:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    raise NoResponse("connection closed before a response arrived")
                head += chunk
                if len(head) > 8192:
                    break
        match = STATUS_LINE.match(head.split(b"\r\n", 1)[0])
        if match is None:
            raise HttpError(f"not an HTTP/1.x response: {head[:40]!r}")
        status = int(match.group(2))
        return None if status < 200 else status

    async def accepts(self, timeout: float) -> None:
        """Raise unless a TCP connection to the app is accepted (the kubelet's tcpSocket check).

        To a remembered address this is a bare non-blocking connect and close, about half the CPU of a stream
        connection: the check of a ready app runs every 2 seconds for the pod's whole life.
        """
        family = numeric_family(self.address) if self.address is not None else None
        async with aio.timeout(timeout):
            if family is None:
                _, writer = await self.open(timeout, tls=False)
                writer.transport.abort()
                return
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setblocking(False)
                await aio.get_running_loop().sock_connect(sock, (self.address, self.port))

    def connection(self) -> Connection:
        """A keep-alive connection to where the app was found (opened lazily), for the self warm-up."""
        host = self.address or self.config.app_hosts[0]
        connection = Connection(host, self.port, self.host_header, tls=self.tls)
        connection.server_hostname = self.server_name
        return connection
