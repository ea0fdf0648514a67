"""The Traefik binary: built from the wrapper module ``hack/traefik`` into ``~/.cache/lanes/traefik-<version>/bin``.

Traefik v3.6's Kubernetes Gateway provider is the Gateway API implementation of the data-plane tests and of
``make demo``. It cannot be ``go install``ed (its go.mod has replace and exclude directives), so hack/traefik
requires it and repeats them (see the comment there). The build reuses the control plane's builder
(:func:`devtools.controlplane.binaries._build_group`: a staging directory renamed into place only when the
binary linked, a log file, a heartbeat) and runs it under ``nice -n 10`` in a child process, because a cold
Traefik build takes ~6 min of both cores and peaks near 3 GB: it must not starve the other builds and tests
sharing the machine.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from devtools.controlplane.binaries import BinaryError, _build_group, _Group, cache_root

TRAEFIK_VERSION = "v3.6.12"
_MODULE = "github.com/traefik/traefik/v3"
#: CPU priority of the build: below the tests and the control plane's own builds.
BUILD_NICENESS = 10


def _group() -> _Group:
    return _Group(
        name="traefik",
        module_dir="traefik",
        packages=(f"{_MODULE}/cmd/traefik",),
        binaries=("traefik",),
        version=TRAEFIK_VERSION,
        # -s -w: 178 MB instead of 245 MB; the version is what `traefik version` and the API report
        ldflags=f"-s -w -X {_MODULE}/pkg/version.Version={TRAEFIK_VERSION}",
    )


def traefik_dir() -> Path:
    return cache_root() / f"traefik-{TRAEFIK_VERSION}"


def traefik_path() -> Path:
    """Where the binary is (or will be); ``$LANES_TRAEFIK`` names another one."""
    explicit = os.environ.get("LANES_TRAEFIK")
    return Path(explicit) if explicit else traefik_dir() / "bin" / "traefik"


def _say(message: str) -> None:
    print(f"[lanes dataplane] {message}", file=sys.stderr, flush=True)


def _build_here() -> None:
    """Build in this process (the child ``ensure_traefik`` starts under nice)."""
    bin_dir = traefik_dir() / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    _build_group(_group(), bin_dir, traefik_dir() / "logs")


def ensure_traefik() -> Path:
    """The Traefik binary, building it (~6 min cold on 2 cores, nice 10) when it is not cached yet.

    Raises BinaryError with the reason (no Go, failed build with its log) when it cannot be had.
    """
    path = traefik_path()
    if path.is_file():
        return path
    if os.environ.get("LANES_TRAEFIK"):
        raise BinaryError(f"LANES_TRAEFIK={path} is not a file; unset it to build Traefik from Go modules")
    if shutil.which("go") is None:
        raise BinaryError("the data-plane tests need Go >= 1.26 to build Traefik from its Go module (hack/traefik)")
    _say(f"building Traefik {TRAEFIK_VERSION} from hack/traefik with nice -n {BUILD_NICENESS} into {path.parent}")
    started = time.monotonic()
    result = subprocess.run(
        ["nice", "-n", str(BUILD_NICENESS), sys.executable, "-m", "devtools.dataplane.traefik", "build"],
        cwd=Path(__file__).resolve().parents[2],
    )
    if result.returncode != 0 or not path.is_file():
        raise BinaryError(f"building Traefik failed (exit {result.returncode}); see the log named above")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size = path.stat().st_size / 2**20
    _say(
        f"Traefik ready: {path} ({size:.0f} MiB) in {time.monotonic() - started:.0f}s; "
        f"largest build process peaked at {peak:.0f} MiB"
    )
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m devtools.dataplane.traefik [ensure|build|path]``."""
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "ensure"
    try:
        if command == "ensure":
            print(ensure_traefik())
            return 0
        if command == "build":
            _build_here()
            return 0
        if command == "path":
            print(traefik_path())
            return 0
    except BinaryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"usage: python -m devtools.dataplane.traefik [ensure|build|path] (got {command!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
