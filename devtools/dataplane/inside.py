"""The data plane's namespace holder: the process that owns the run's private network + mount namespace.

Started by :class:`devtools.dataplane.harness.DataPlane` as ``unshare --net --mount --propagation private --
python -m devtools.dataplane.inside WORKDIR``. It brings up ``lo`` (the namespace's only link: every address the
run uses is a /32 alias on it, added later with ``nsenter``) and bridges the namespace to the host through Unix
sockets in WORKDIR, with no host network change (a Unix socket is a file, both sides see it):

* ``dial.sock`` (:class:`devtools.realnode.dial.DialServer`): the host connects to addresses inside, e.g. the edge
  Gateway, through it;
* a loopback port inside that carries each connection out through ``host.sock`` (the host side's DialServer) to
  the test API server on the host's loopback, so Traefik inside reads it with an ordinary kubeconfig.

It writes ``state.json`` (its pid and the inner API port) once ready, and exits on SIGTERM or when its parent
dies; the namespace, its addresses and any socket in it end with the last process in it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from devtools.hostprocs import die_with_parent
from devtools.realnode.dial import DialServer, Forwarder


def main(argv: list[str]) -> int:
    workdir, api_port = Path(argv[0]), int(argv[1])
    die_with_parent()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True, text=True)
        server = DialServer(workdir / "dial.sock")
        api = Forwarder(workdir / "host.sock", "127.0.0.1", api_port)
    except (OSError, subprocess.CalledProcessError) as exc:
        (workdir / "failed.txt").write_text(f"{exc}\n{getattr(exc, 'stderr', '') or ''}")
        return 1
    state = {"pid": os.getpid(), "api_port": api.port}
    (workdir / "state.json.tmp").write_text(json.dumps(state))
    os.replace(workdir / "state.json.tmp", workdir / "state.json")
    while not stop.wait(1.0):  # in slices: a signal landing on another thread wakes no timeless wait
        pass
    api.close()
    server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
