"""What every local harness (control plane, real node, data plane) needs of the host to run its processes: a
one-line answer when the host cannot run namespaced processes at all, and children that die with their parent.

One place, because the control plane, the real node and the data plane each grew their own copy.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent dies (PR_SET_PDEATHSIG). Run it in the
    child between fork and exec (:func:`killed_with_parent` gives a ``preexec_fn``), or first thing in a child
    process: a harness killed hard then leaves no orphan behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)


def killed_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that makes the child get ``signum`` when its parent dies."""
    return lambda: die_with_parent(signum)


def linux_root_preflight(subject: str, *, linux: str, root: str, commands: Sequence[str]) -> str | None:
    """Why ``subject`` cannot run here, in one line (not Linux, not root, a command missing); None when it can.
    ``linux`` and ``root`` say what it needs them for."""
    if not sys.platform.startswith("linux"):
        return f"{subject} needs {linux} (this is {sys.platform})"
    if os.geteuid() != 0:
        return f"{subject} needs root {root}"
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        return f"{subject} needs {', '.join(missing)} (util-linux, iproute2)"
    return None
