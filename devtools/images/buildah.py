"""Driving buildah (Debian's package) without a registry, a daemon, or any change under /etc/containers.

Every setting comes from a folder of the run, selected by environment variables (``CONTAINERS_STORAGE_CONF``,
``CONTAINERS_REGISTRIES_CONF``, ``CONTAINERS_CONF``) and global flags, so the host's configuration is neither read
nor written:

- registries.conf blocks docker.io, quay.io and ghcr.io and lists no search registries: a ``FROM`` that is not
  already in the local store fails at once instead of reaching for Docker Hub (``--pull=never`` as well);
- policy.json accepts local images only (``--signature-policy``);
- the runtime is Debian's runc (crun refuses this kind of host: "cgroups in hybrid mode not supported"), with the
  host's network for RUN steps (no CNI bridge, no iptables rules on the host) and the host's CA bundle mounted
  read-only for them (pip reaching the package index; never stored in a layer);
- image storage persists under the cache (``~/.cache/lanes/buildah``) so layers are reused, and each buildah call
  runs in a private mount namespace (``unshare --mount``) with /var and /run as overlays onto the run folder, so
  neither a mount nor a file it makes outside the cache outlives it on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BLOCKED_REGISTRIES = ("docker.io", "quay.io", "ghcr.io", "registry.k8s.io", "gcr.io")
APT_PACKAGES = ("buildah", "mmdebstrap", "runc")


class ImageError(RuntimeError):
    """An image cannot be built here; the message says why and what to do."""


def say(message: str) -> None:
    print(f"[lanes images] {message}", file=sys.stderr, flush=True)


def missing_tools() -> list[str]:
    return [tool for tool in ("buildah", "mmdebstrap", "runc", "unshare") if shutil.which(tool) is None]


def check_host() -> None:
    """One line saying why images cannot be built here, or nothing."""
    missing = missing_tools()
    if missing:
        raise ImageError(
            f"building the images needs {', '.join(missing)}: run `sudo apt-get install -y {' '.join(APT_PACKAGES)}` "
            "(or `make test`, which installs them when run as root)"
        )
    if os.geteuid() != 0:
        raise ImageError("building the images needs root (buildah storage and mmdebstrap); run as root, e.g. in CI")


class Buildah:
    """buildah with its whole configuration in ``run_dir`` and its image store in ``store_dir``."""

    def __init__(self, run_dir: Path, store_dir: Path, log_path: Path) -> None:
        self.run_dir = run_dir
        self.store_dir = store_dir
        self.log_path = log_path
        self.policy = run_dir / "policy.json"
        self._write_config()

    def _write_config(self) -> None:
        run, store = self.run_dir, self.store_dir
        (run / "registries.d").mkdir(parents=True, exist_ok=True)
        (run / "tmp").mkdir(exist_ok=True)
        (run / "cni").mkdir(exist_ok=True)
        store.mkdir(parents=True, exist_ok=True)
        driver = os.environ.get("LANES_BUILDAH_DRIVER", "overlay")
        (run / "storage.conf").write_text(
            f'[storage]\ndriver = "{driver}"\ngraphroot = "{store / "storage"}"\nrunroot = "{run / "runroot"}"\n'
        )
        blocked = "".join(f'[[registry]]\nlocation = "{r}"\nblocked = true\n\n' for r in BLOCKED_REGISTRIES)
        (run / "registries.conf").write_text(
            f'unqualified-search-registries = []\nshort-name-mode = "disabled"\n\n{blocked}'
        )
        self.policy.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {
            "containers-storage": {"": [{"type": "insecureAcceptAnything"}]},
            "oci": {"": [{"type": "insecureAcceptAnything"}]},
            "oci-archive": {"": [{"type": "insecureAcceptAnything"}]},
            "dir": {"": [{"type": "insecureAcceptAnything"}]},
        }}, indent=2))
        runc = shutil.which("runc") or "runc"
        (run / "containers.conf").write_text(
            "[containers]\n"
            'netns = "host"\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "none"\n'
            f'[engine.runtimes]\nrunc = ["{runc}"]\n'
            "[network]\n"
            f'network_config_dir = "{run / "cni"}"\n'
        )

    def env(self) -> dict[str, str]:
        run = self.run_dir
        return {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(run / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(run / "registries.conf"),
            "CONTAINERS_CONF": str(run / "containers.conf"),
            "BUILDAH_RUNTIME": shutil.which("runc") or "runc",
            "BUILDAH_ISOLATION": os.environ.get("LANES_BUILDAH_ISOLATION", "oci"),
            "BUILDAH_FORMAT": "oci",
            "TMPDIR": str(run / "tmp"),
        }

    def global_flags(self) -> list[str]:
        run = self.run_dir
        return [
            "--registries-conf-dir", str(run / "registries.d"),
            "--short-name-alias-conf", str(run / "short-name-aliases.conf"),
        ]

    def command(self, *args: str) -> list[str]:
        """``buildah args`` in a private mount namespace where /var and /run are overlays whose writes land in the
        run folder: buildah's blob-info cache (/var/lib/containers/cache), temporary files (/var/tmp) and runc's
        state (/run/runc) would otherwise be left on the host. Overlay mounts of the store vanish with it too."""
        overlays = []
        for target in ("/var", "/run"):
            upper = self.run_dir / "host" / target.strip("/")
            (upper / "upper").mkdir(parents=True, exist_ok=True)
            (upper / "work").mkdir(exist_ok=True)
            overlays.append(f"mount -t overlay lanes-buildah -o lowerdir={target},upperdir={upper / 'upper'},"
                            f"workdir={upper / 'work'} {target}")
        script = " && ".join([*overlays, 'exec "$@"'])
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                "buildah", *self.global_flags(), *args]

    def run(self, *args: str, capture: bool = False, cwd: Path | None = None) -> str:
        """One buildah command (see ``command``); output to the log (or returned with ``capture``)."""
        cmd = self.command(*args)
        with self.log_path.open("a") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            result = subprocess.run(
                cmd, env=self.env(), cwd=cwd, text=True,
                stdout=subprocess.PIPE if capture else log, stderr=log,
            )
        if result.returncode != 0:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise ImageError(
                f"buildah {args[0]} failed (exit {result.returncode}); log: {self.log_path}\n    "
                + "\n    ".join(tail)
            )
        return result.stdout if capture else ""

    def exists(self, ref: str) -> bool:
        cmd = self.command("inspect", "--type", "image", "--format", "{{.FromImageID}}", ref)
        return subprocess.run(cmd, env=self.env(), capture_output=True).returncode == 0

    def build(self, dockerfile: Path, context: Path, ref: str, build_args: dict[str, str]) -> float:
        """``buildah build`` with nothing pulled; seconds taken."""
        started = time.monotonic()
        volumes = ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.is_file() else []
        args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
        self.run(
            "build", "--pull=never", "--layers", "--network=host", "--signature-policy", str(self.policy),
            *volumes, *args, "--file", str(dockerfile), "--tag", ref, str(context),
        )
        return time.monotonic() - started

    def import_rootfs(self, rootfs_tar: Path, ref: str, config: Sequence[str]) -> None:
        """``buildah from scratch`` + ``add`` of a root filesystem tarball + ``commit`` to ``ref``."""
        container = self.run("from", "--pull=never", "--signature-policy", str(self.policy), "scratch",
                             capture=True).strip()
        try:
            self.run("add", container, str(rootfs_tar), "/")
            self.run("config", *config, container)
            self.run("commit", "--signature-policy", str(self.policy), "--rm", container, ref)
        except ImageError:
            subprocess.run(self.command("rm", container), env=self.env(), capture_output=True)
            raise

    def push_layout(self, ref: str, layout_dir: Path) -> None:
        """The image as an OCI image layout folder (gzip-compressed layers)."""
        self.run("push", "--signature-policy", str(self.policy), "--quiet", ref, f"oci:{layout_dir}:{ref}")
