"""A TCP relay to the API server that can lose its connection state the way a NAT does: a hand-written
stand-in for ``conntrack -F`` on a node (or a load balancer's idle timeout), which cannot be done to the
loopback control plane here.

What a real NAT does when it forgets an established connection (Linux conntrack with ``tcp_loose``, kube-proxy's
``ctstate INVALID`` drop), and what :meth:`NatRelay.lose_state` reproduces for every connection open at that
moment: if the *client* sends next, the NAT re-creates the state and the connection carries on; if the *server*
sends next (a watch event), its packets are no longer translated back, the client's kernel answers them with a
reset, so the server closes its end, while the client hears nothing, ever, and sees no error. New connections
are unaffected. (TCP keepalive probes would be answered by this relay's own kernel, so only the reflector's idle
limit, not the keepalive, is exercised through it.)
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.stale = False  # state lost: the next direction to send decides the fate
        self.dead = False  # the server sent first after the loss: the client is never answered again


class NatRelay:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_state(self) -> None:
        with self._lock:
            for pair in self._pairs:
                pair.stale = True

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for pair in self._pairs:
                for sock in (pair.client, pair.server):
                    with contextlib.suppress(OSError):
                        sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: _Pair) -> None:
        sockets = [pair.client, pair.server]
        while not self._closed.is_set():
            try:
                readable, _, _ = select.select(sockets, [], [], 0.5)
            except (OSError, ValueError):
                return
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                from_server = sock is pair.server
                if pair.stale and not pair.dead:
                    pair.stale = False
                    pair.dead = from_server
                    if pair.dead:  # the server got a reset: its end is gone; the client's stays open and silent
                        with contextlib.suppress(OSError):
                            pair.server.close()
                        sockets = [pair.client]
                        break
                if pair.dead:
                    if not data:
                        return  # the client gave up on its own
                    continue  # swallowed: nothing reaches the server any more
                if not data:
                    for other in (pair.client, pair.server):
                        with contextlib.suppress(OSError):
                            other.shutdown(socket.SHUT_WR)
                    return
                target = pair.client if from_server else pair.server
                try:
                    target.sendall(data)
                except OSError:
                    return
