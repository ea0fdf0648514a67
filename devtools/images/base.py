"""The base image: a Debian root filesystem made from Debian packages with mmdebstrap, imported into buildah.

Nothing comes from a registry: the packages come from the host's own Debian mirror (its apt sources), the root
filesystem is a tarball cached under ``~/.cache/lanes/images-base-<key>/``, and ``buildah from scratch`` + ``add``
+ ``commit`` turn it into ``localhost/lanes/base:<key>``, which every Dockerfile here gets as its
``PYTHON_IMAGE`` build argument. Unlike python:slim it has Debian's Python at /usr/bin/python3, no ``python``
command and the PEP 668 marker; the Dockerfiles are written for both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from devtools.images.buildah import Buildah, ImageError, say
from devtools.images.recipes import BaseRecipe, host_sources

HOOKS = Path("/usr/share/mmdebstrap/hooks")
#: kept although /usr/share/doc is excluded: the licence of every package in the image
KEEP = ("/usr/share/doc/*/copyright",)


def mmdebstrap_command(recipe: BaseRecipe, output: Path) -> list[str]:
    """The mmdebstrap call for ``recipe`` (pure, so a test can read it)."""
    cmd = ["mmdebstrap", f"--variant={recipe.variant}", "--format=tar", "--quiet"]
    if recipe.packages:
        cmd.append("--include=" + ",".join(recipe.packages))
    cmd += [f"--dpkgopt=path-exclude={pattern}" for pattern in recipe.excludes]
    cmd += [f"--dpkgopt=path-include={pattern}" for pattern in KEEP]
    cmd += [f"--hook-dir={HOOKS / hook}" for hook in recipe.hooks]
    cmd += [recipe.suite, str(output)]
    cmd += [recipe.mirror] if recipe.mirror else [str(p) for p in host_sources()]
    return cmd


def ensure_base(recipe: BaseRecipe, buildah: Buildah, cache_root: Path) -> dict[str, float]:
    """``localhost/lanes/base:<key>`` in buildah's store, from the cached root filesystem or a fresh one; the
    seconds each step took (empty when it was already there)."""
    ref = recipe.ref()
    if buildah.exists(ref):
        return {}
    timings: dict[str, float] = {}
    folder = cache_root / f"images-base-{recipe.key()}"
    rootfs = folder / "rootfs.tar"
    if not rootfs.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".rootfs-", dir=folder)) / "rootfs.tar"
        cmd = mmdebstrap_command(recipe, partial)
        say(f"building the base root filesystem from Debian packages ({', '.join(recipe.packages)}; "
            f"cold ~1 min): {' '.join(cmd)}")
        started = time.monotonic()
        with buildah.log_path.open("a") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            # root mode mounts /proc and /dev inside the target: keep those mounts in a private namespace
            result = subprocess.run(["unshare", "--mount", "--propagation", "private", *cmd],
                                    stdout=log, stderr=log, env={**os.environ, "TMPDIR": str(partial.parent)})
        if result.returncode != 0 or not partial.is_file():
            shutil.rmtree(partial.parent, ignore_errors=True)
            tail = buildah.log_path.read_text(errors="replace").splitlines()[-15:]
            raise ImageError(f"mmdebstrap failed (exit {result.returncode}); log: {buildah.log_path}\n    "
                             + "\n    ".join(tail))
        os.replace(partial, rootfs)
        shutil.rmtree(partial.parent, ignore_errors=True)
        timings["base rootfs (mmdebstrap)"] = time.monotonic() - started
        say(f"base root filesystem: {rootfs.stat().st_size / 2**20:.0f} MiB in "
            f"{timings['base rootfs (mmdebstrap)']:.0f}s")
    started = time.monotonic()
    say(f"importing it as {ref} (buildah from scratch + add + commit)")
    buildah.import_rootfs(rootfs, ref, [
        "--os", "linux", "--arch", _arch(),
        "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--env", "LANG=C.UTF-8",
        "--cmd", "python3",
        "--label", "org.opencontainers.image.title=lanes-base",
        "--label", f"org.opencontainers.image.description=Debian {recipe.suite} {recipe.variant} + "
                   + " ".join(recipe.packages),
    ])
    timings["base import (buildah)"] = time.monotonic() - started
    return timings


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
