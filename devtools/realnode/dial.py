"""Reaching addresses inside the node's network namespace from the host, without any host network change.

The namespace has no link to the host (no veth into the host, no route, no iptables rule). Instead the node's
supervisor, inside the namespace, serves a Unix socket in the run's folder (a Unix socket is a file: both sides
see it). A client connects to it, sends one line ``HOST PORT``, gets ``ok`` once the supervisor has connected to
that address from inside the namespace, and from then on the socket carries the TCP stream. On top of that,
:class:`Forwarder` listens on a host loopback port and dials through for each connection: that is how the test
process's Kubernetes client, helm and kubectl reach the API server (and tests reach a pod or a ClusterIP).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

_BUFFER = 65536


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until EOF, then half-close the other side so the peer sees the end of the stream."""
    try:
        while True:
            data = source.recv(_BUFFER)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def splice(a: socket.socket, b: socket.socket) -> None:
    """Carry bytes both ways between two connected sockets until both directions ended; closes both."""
    other = threading.Thread(target=_pump, args=(b, a), daemon=True)
    other.start()
    _pump(a, b)
    other.join()
    a.close()
    b.close()


def _read_line(conn: socket.socket, limit: int = 512) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk or len(data) > limit:
            raise OSError("connection closed before the request line")
        data += chunk
    return data.decode().strip()


class DialServer:
    """Inside the namespace: accept on ``path``, connect where each client asks, splice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        path.chmod(0o600)
        self._sock.listen(128)
        self._thread = threading.Thread(target=self._serve, name="dial-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _handle(conn: socket.socket) -> None:
        try:
            host, port = _read_line(conn).rsplit(" ", 1)
            upstream = socket.create_connection((host, int(port)), timeout=10)
            upstream.settimeout(None)
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError):
                conn.sendall(f"error {exc}\n".encode())
            conn.close()
            return
        conn.sendall(b"ok\n")
        splice(conn, upstream)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def dial(path: Path, host: str, port: int, timeout: float = 15) -> socket.socket:
    """A stream socket connected to ``host:port`` as seen from inside the namespace whose server is ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(f"{host} {port}\n".encode())
        answer = _read_line(sock)
    except OSError:
        sock.close()
        raise
    if answer != "ok":
        sock.close()
        raise ConnectionRefusedError(f"{host}:{port} inside the node namespace: {answer}")
    sock.settimeout(None)
    return sock


class Forwarder:
    """A host loopback port whose connections are carried to ``host:port`` inside the namespace."""

    def __init__(self, path: Path, host: str, port: int) -> None:
        self.target = (host, port)
        self._path = path
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, name=f"forward-{host}:{port}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            upstream = dial(self._path, *self.target)
        except OSError:
            conn.close()  # the client sees a reset, as it would for a refused connection
            return
        splice(conn, upstream)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
