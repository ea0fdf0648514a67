"""runc, the CNI plugins and iptables for the real test node, from Debian packages unpacked into the cache.

Nothing is installed on the host: ``apt-get download`` fetches the ``.deb`` files and ``dpkg-deb -x`` unpacks them
into ``~/.cache/lanes/debian-<key>/root``; no service, no alternative, no file under /usr. The node's processes get
``PATH``/``LD_LIBRARY_PATH``/``XTABLES_LIBDIR`` pointing there (see :func:`environment`), which is how kube-proxy
and the bridge plugin find ``iptables`` (the nf_tables flavour, whose rules then live only in the node's network
namespace).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.controlplane.binaries import BinaryError, cache_root

#: The packages and the versions the node was tried with (Debian 12). A newer point release of the same package
#: is taken when the mirror no longer has this one (said on stderr), and cached under its own key.
PACKAGES: tuple[tuple[str, str], ...] = (
    ("runc", "1.1.5+ds1-1+deb12u1"),
    ("containernetworking-plugins", "1.1.1+ds1-3+b5"),
    ("iptables", "1.8.9-2"),
    ("libip4tc2", "1.8.9-2"),
    ("libip6tc2", "1.8.9-2"),
    ("libxtables12", "1.8.9-2"),
    ("libnftnl11", "1.2.4-2"),
    ("libmnl0", "1.0.4-3"),
    ("libnetfilter-conntrack3", "1.0.9-3"),
    ("libnfnetlink0", "1.0.2-2"),
    ("conntrack", "1:1.4.7-1+b2"),
)

#: Commands the node's processes look up in PATH, and the file in the unpacked tree each one runs.
_COMMANDS = {
    "runc": "usr/sbin/runc",
    "conntrack": "usr/sbin/conntrack",
    **{
        name: "usr/sbin/xtables-nft-multi"  # a multi-call binary: dispatches on its argv[0]
        for name in (
            "iptables",
            "iptables-save",
            "iptables-restore",
            "ip6tables",
            "ip6tables-save",
            "ip6tables-restore",
        )
    },
}


@dataclass(frozen=True)
class DebianTools:
    """The unpacked packages: ``bin`` holds runc, conntrack and the iptables commands; ``cni_bin`` the plugins."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root.parent / "bin"

    @property
    def cni_bin(self) -> Path:
        return self.root / "usr" / "lib" / "cni"

    @property
    def lib(self) -> Path:
        return self.root / "usr" / "lib" / "x86_64-linux-gnu"

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with these tools first in PATH and their libraries."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        env["LD_LIBRARY_PATH"] = str(self.lib)
        env["XTABLES_LIBDIR"] = str(self.lib / "xtables")
        return env


def _say(message: str) -> None:
    print(f"[lanes realnode] {message}", file=sys.stderr, flush=True)


def _key(packages: tuple[tuple[str, str], ...]) -> str:
    return hashlib.sha256(repr(sorted(packages)).encode()).hexdigest()[:12]


def _download(packages: tuple[tuple[str, str], ...], into: Path) -> list[str]:
    """Download the pinned versions, falling back to the mirror's candidate for any pin it lacks."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise BinaryError("the real node needs runc, CNI plugins and iptables from Debian packages: apt-get not found")
    got: list[str] = []
    for name, version in packages:
        for spec in (f"{name}={version}", name):
            result = subprocess.run(["apt-get", "download", "-q", spec], cwd=into, capture_output=True, text=True)
            if result.returncode == 0:
                if spec == name:
                    _say(f"{name}={version} is gone from the mirror; took its current version")
                got.append(spec)
                break
        else:
            raise BinaryError(f"apt-get download {name} failed: {result.stderr.strip()[-300:]} (try `apt-get update`)")
    return got


def ensure_debian_tools(packages: tuple[tuple[str, str], ...] = PACKAGES) -> DebianTools:
    """The unpacked packages, downloading and unpacking them once (about 10 s) into the cache."""
    folder = cache_root() / f"debian-{_key(packages)}"
    tools = DebianTools(folder / "root")
    if (folder / "versions.txt").is_file():
        return tools
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _say(f"downloading {len(packages)} Debian packages (runc, CNI plugins, iptables) into {folder} (~10 s)")
    staging = Path(tempfile.mkdtemp(prefix=".debian-", dir=folder.parent))
    try:
        debs = staging / "debs"
        debs.mkdir()
        got = _download(packages, debs)
        root = staging / "root"
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        bin_dir = staging / "bin"
        bin_dir.mkdir()
        for command, target in _COMMANDS.items():
            if not (root / target).is_file():
                raise BinaryError(f"the unpacked Debian packages lack {target}")
            # absolute link into the final location (the staging folder is renamed there below)
            (bin_dir / command).symlink_to(folder / "root" / target)
        shutil.rmtree(debs)
        (staging / "versions.txt").write_text("\n".join(got) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _say(f"unpacked the Debian packages in {time.monotonic() - started:.0f}s")
    return tools
