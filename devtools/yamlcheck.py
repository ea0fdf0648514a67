"""Building (or reusing) ``yamlcheck``: kubectl's YAML reading as a command, the oracle of the ``lanes inject`` tests.

``hack/yamlcheck`` is a few lines of Go on sigs.k8s.io/yaml (go-yaml v2), the library kubectl converts manifests
with; it prints each document of its stdin as JSON the way kubectl would send it. It is built with ``go build``
into ``~/.cache/lanes/yamlcheck-<hash of go.mod, go.sum and main.go>/yamlcheck`` (seconds when the modules are in
Go's cache), so a change of the pinned versions never reuses a stale binary. Not shipped; tests only.

``python -m devtools.yamlcheck`` builds it and prints the path.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devtools.controlplane.binaries import HACK_DIR, BinaryError, _go, cache_root

MODULE = HACK_DIR / "yamlcheck"
_SOURCES = ("go.mod", "go.sum", "main.go")


def _say(message: str) -> None:
    print(f"[lanes yamlcheck] {message}", file=sys.stderr, flush=True)


def version_key() -> str:
    """Hash of the module's sources: the pinned versions and the program itself."""
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update(name.encode() + b"\0" + (MODULE / name).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def binary_path() -> Path:
    return cache_root() / f"yamlcheck-{version_key()}" / "yamlcheck"


def ensure_yamlcheck() -> Path:
    """The built checker, building it when missing; BinaryError (with the command and its output) otherwise."""
    target = binary_path()
    if target.is_file():
        return target
    go = _go()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent)) / "yamlcheck"
    command = ["nice", "-n", "10", go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging), "."]
    _say(f"building {target} from {MODULE} (sigs.k8s.io/yaml; ~10 s once Go has the modules): {' '.join(command)}")
    started = time.monotonic()
    result = subprocess.run(command, cwd=MODULE, capture_output=True, text=True)
    if result.returncode != 0 or not staging.is_file():
        raise BinaryError(
            f"go build of yamlcheck failed (exit {result.returncode}) in {MODULE}:\n{result.stdout}{result.stderr}"
        )
    os.replace(staging, target)  # atomic: a binary at the target path is always complete
    staging.parent.rmdir()
    _say(f"built yamlcheck in {time.monotonic() - started:.0f}s")
    return target


def read_like_kubectl(text: str, binary: Path | None = None, *, strict: bool = False) -> list[dict[str, Any]]:
    """Each non-empty document of ``text`` as kubectl reads it: ``{"json": obj}`` or ``{"error": message}``."""
    command = [str(binary or ensure_yamlcheck()), *(["-strict"] if strict else [])]
    result = subprocess.run(command, input=text, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"yamlcheck failed (exit {result.returncode}): {result.stderr.strip()}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def main() -> int:
    try:
        print(ensure_yamlcheck())
    except BinaryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
