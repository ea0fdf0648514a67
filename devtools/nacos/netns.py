"""A private network namespace the run creates: Nacos and everything that talks to it live inside.

Nacos 2.3.2 binds its HTTP port to the address it is told, but gRPC (HTTP port + 1000, + 1001) and Raft (7848)
listen on every interface with no setting to change that. Running it in a fresh network namespace keeps those
ports off the host without touching the host's network. Inside: the loopback and a veth pair whose both ends stay
inside (``lanes0`` holds :data:`ADDRESSES`, stand-ins for pod IPs; the Nacos SDK also wants a non-loopback IPv4).

The namespace is held by a ``sleep`` process started under ``unshare --net``. Two ways in:

- :meth:`NetNamespace.command` wraps a command in ``nsenter --net=...`` (any thread may start it);
- :meth:`NetNamespace.enter` moves the *calling thread* into the namespace (``setns(2)``; a network namespace is
  per thread), so that sockets it opens and processes it starts are inside; :meth:`leave` moves it back. The
  Nacos tests do this on pytest's main thread for their package, so the test code, the agents, the apps and the
  consumers all meet Nacos on the namespace's 127.0.0.1.

Needs root (CAP_SYS_ADMIN), as the real-node tests do.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
SUBNET = "10.250.0"
ADDRESSES = tuple(f"{SUBNET}.{host}" for host in range(1, 33))
"""Addresses on the namespace's ``lanes0`` (stand-ins for pod IPs; all local, so any process inside reaches them)."""
_SETUP = " && ".join(
    [
        "ip link set lo up",
        # a veth pair kept inside: the Nacos SDK refuses to start without a non-loopback IPv4 interface
        "ip link add lanes0 type veth peer name lanes1",
        *(f"ip addr add {address}/24 dev lanes0" for address in ADDRESSES),
        "ip link set lanes1 up",
        "ip link set lanes0 up",
    ]
)
PR_SET_PDEATHSIG = 1


class NetnsError(RuntimeError):
    """The namespace cannot be created or entered (not root, no unshare/nsenter)."""


def die_with_parent() -> None:
    """``preexec_fn``: the child is killed when the process that started it dies (no orphans after a crash)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise NetnsError(f"setns(CLONE_NEWNET) failed: {os.strerror(error)}")


@dataclass
class NetNamespace:
    holder: subprocess.Popen[bytes]
    _saved: list[int] = field(default_factory=list)

    @classmethod
    def create(cls) -> NetNamespace:
        if os.geteuid() != 0:
            raise NetnsError("a private network namespace needs root (CAP_SYS_ADMIN)")
        for tool in ("unshare", "nsenter", "ip"):
            if shutil.which(tool) is None:
                raise NetnsError(f"{tool} is not installed (util-linux / iproute2)")
        holder = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", f"{_SETUP} && echo up && exec sleep infinity"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        assert holder.stdout is not None
        line = holder.stdout.readline()
        if line.strip() != b"up":
            holder.kill()
            _, err = holder.communicate(timeout=5)
            raise NetnsError(f"could not create a network namespace: {err.decode(errors='replace').strip()}")
        return cls(holder)

    @property
    def path(self) -> str:
        return f"/proc/{self.holder.pid}/ns/net"

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace (from any thread)."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def enter(self) -> None:
        """Move the calling thread into the namespace (nestable with :meth:`leave`)."""
        saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
        except BaseException:
            os.close(saved)
            raise
        finally:
            os.close(target)
        self._saved.append(saved)

    def leave(self) -> None:
        """Move the calling thread back to where :meth:`enter` found it."""
        saved = self._saved.pop()
        try:
            _setns(saved)
        finally:
            os.close(saved)

    def close(self) -> None:
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait(5)
        for stream in (self.holder.stdout, self.holder.stderr):
            if stream is not None:
                stream.close()
