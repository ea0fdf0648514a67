"""Finding or building the control-plane binaries.

Binaries are built from Go modules (wrapper modules under ``hack/``) into a cache directory keyed by version, so
a second run reuses them and a version bump never mixes old and new binaries. A build writes into a temporary
directory next to the cache and renames it into place only when every binary linked, so an interrupted or
failed build is never mistaken for a good one.

``KUBEBUILDER_ASSETS`` (the envtest convention) wins when it names a directory holding the binaries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.22.0"
#: containerd of the real test node (devtools/realnode), from its own Go module: its go.mod pins its dependencies.
CONTAINERD_VERSION = "v2.3.7"
#: The pod sandbox program in hack/node/pause; bump when main.go changes.
PAUSE_VERSION = "1"
#: The real node's cluster DNS, from the wrapper module hack/coredns (only the plugins a kubeadm Corefile uses; keep
#: in step with its go.mod). COREDNS_BUILD: bump when hack/coredns/main.go changes (its cache folder is keyed by both).
COREDNS_VERSION = "v1.14.7"
COREDNS_BUILD = "1"

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK_DIR = REPO_ROOT / "hack"

#: Rough cold-build times on a 2-core machine, printed so nobody stares at a silent terminal.
_EXPECTED_MINUTES = {"controlplane": 15, "etcd": 2, "kwok": 5, "helm": 4, "node": 4, "containerd": 2, "pause": 1,
                     "coredns": 4}


class BinaryError(RuntimeError):
    """The binaries are missing and cannot be built; the message says what to install or set."""


@dataclass(frozen=True)
class _Group:
    """One wrapper module and the commands it builds."""

    name: str
    module_dir: str
    packages: tuple[str, ...]
    binaries: tuple[str, ...]
    version: str
    ldflags: str
    #: built for the real test node only (``ensure_node_binaries``), never by ``make controlplane``
    node: bool = False
    #: ``go install <package>@<version>`` from the package's own module (no wrapper module under hack/)
    go_install: bool = False
    tags: str = ""
    env: tuple[tuple[str, str], ...] = ()
    #: run ``go build`` under ``nice -n`` this (0: as is); for builds a test session may start on a shared machine
    niceness: int = 0

    def bin_dir(self) -> Path:
        """Where this group's binaries are cached; node groups get their own version-keyed folder, so a bump of
        etcd or helm never rebuilds kubelet (and the other way round)."""
        if not self.node:
            return cache_dir() / "bin"
        return cache_root() / f"{self.name}-{self.version}" / "bin"


def _kube_ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return " ".join(
        [
            "-s -w",
            f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    )


def _groups() -> tuple[_Group, ...]:
    return (
        _Group(
            name="etcd",
            module_dir="etcd",
            packages=(".",),
            binaries=("etcd",),
            version=ETCD_VERSION,
            ldflags="-s -w",
        ),
        _Group(
            name="controlplane",
            module_dir="controlplane",
            packages=(
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
                "k8s.io/kubernetes/cmd/kube-scheduler",
            ),
            binaries=("kube-apiserver", "kube-controller-manager", "kube-scheduler"),
            version=KUBERNETES_VERSION,
            ldflags=_kube_ldflags(),
        ),
        _Group(
            name="kwok",
            module_dir="kwok",
            packages=("sigs.k8s.io/kwok/cmd/kwok",),
            binaries=("kwok",),
            version=KWOK_VERSION,
            ldflags="-s -w",
        ),
        _Group(
            name="helm",
            module_dir="helm",
            packages=("helm.sh/helm/v3/cmd/helm",),
            binaries=("helm",),
            version=HELM_VERSION,
            ldflags=f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
        ),
        # The real test node (devtools/realnode). kubelet, kube-proxy and kubectl come from the control plane's
        # wrapper module (one set of pins; its tools.go lists them), so they share its Go build cache.
        _Group(
            name="node",
            module_dir="controlplane",
            packages=(
                "k8s.io/kubernetes/cmd/kubelet",
                "k8s.io/kubernetes/cmd/kube-proxy",
                "k8s.io/kubernetes/cmd/kubectl",
            ),
            binaries=("kubelet", "kube-proxy", "kubectl"),
            version=KUBERNETES_VERSION,
            ldflags=_kube_ldflags(),
            node=True,
        ),
        _Group(
            name="containerd",
            module_dir="",
            packages=(
                "github.com/containerd/containerd/v2/cmd/containerd",
                "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
                "github.com/containerd/containerd/v2/cmd/ctr",
            ),
            binaries=("containerd", "containerd-shim-runc-v2", "ctr"),
            version=CONTAINERD_VERSION,
            ldflags="-s -w",
            node=True,
            go_install=True,
            tags="no_btrfs no_devmapper no_zfs",
            env=(("CGO_ENABLED", "0"),),
        ),
        _Group(
            name="pause",
            module_dir="node/pause",
            packages=(".",),
            binaries=("pause",),
            version=PAUSE_VERSION,
            ldflags="-s -w",
            node=True,
            env=(("CGO_ENABLED", "0"),),
        ),
        _Group(
            name="coredns",
            module_dir="coredns",
            packages=(".",),
            binaries=("coredns",),
            version=f"{COREDNS_VERSION}-{COREDNS_BUILD}",
            ldflags="-s -w",
            node=True,
            env=(("CGO_ENABLED", "0"),),
            niceness=10,
        ),
    )


ALL_BINARIES: tuple[str, ...] = tuple(b for g in _groups() if not g.node for b in g.binaries)
NODE_BINARIES: tuple[str, ...] = tuple(b for g in _groups() if g.node for b in g.binaries)


def cache_root() -> Path:
    """``$LANES_CACHE_DIR`` or ``$XDG_CACHE_HOME/lanes`` or ``~/.cache/lanes``."""
    explicit = os.environ.get("LANES_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lanes"


def cache_dir() -> Path:
    """The versioned directory whose ``bin/`` holds the binaries of this checkout's pins."""
    key = f"k8s-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}_helm-{HELM_VERSION}"
    return cache_root() / key


def _assets_dir() -> Path | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return None
    path = Path(assets)
    missing = [b for b in ("etcd", "kube-apiserver") if not (path / b).is_file()]
    if missing:
        raise BinaryError(f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}; unset it to build from Go modules")
    return path


def _say(message: str) -> None:
    print(f"[lanes envtest] {message}", file=sys.stderr, flush=True)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BinaryError(
            "the test control plane needs Go >= 1.26 to build kube-apiserver and etcd "
            "(install Go, e.g. `apt-get install golang-go` or go.dev/dl), "
            "or set KUBEBUILDER_ASSETS to a directory with etcd and kube-apiserver"
        )
    return go


def _heartbeat(label: str, expected_minutes: int, stop: threading.Event) -> None:
    start = time.monotonic()
    while not stop.wait(30):
        elapsed = int(time.monotonic() - start)
        _say(f"still building {label}: {elapsed // 60}m{elapsed % 60:02d}s elapsed (cold: ~{expected_minutes} min)")


def _build_group(group: _Group, bin_dir: Path, log_dir: Path) -> None:
    go = _go()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"build-{group.name}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    staging = Path(tempfile.mkdtemp(prefix=f".build-{group.name}-", dir=bin_dir.parent))
    tags = ["-tags", group.tags] if group.tags else []
    env = dict(os.environ, **dict(group.env))
    if group.go_install:
        # outside any module, `go install pkg@version` builds with that module's own go.mod
        module = staging
        env["GOBIN"] = str(staging)
        packages = [f"{p}@{group.version}" for p in group.packages]
        cmd = [go, "install", "-trimpath", *tags, "-ldflags", group.ldflags, *packages]
    else:
        module = HACK_DIR / group.module_dir
        if not (module / "go.mod").is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise BinaryError(f"{module}/go.mod not found: building needs a source checkout of Lanes")
        cmd = [go, "build", "-trimpath", *tags, "-ldflags", group.ldflags, "-o", str(staging) + "/", *group.packages]
    if group.niceness:
        cmd = ["nice", "-n", str(group.niceness), *cmd]
    expected = _EXPECTED_MINUTES.get(group.name, 5)
    _say(
        f"building {', '.join(group.binaries)} {group.version} from Go modules "
        f"(cold build ~{expected} min on 2 cores, cached afterwards); log: {log_path}"
    )
    stop = threading.Event()
    ticker = threading.Thread(target=_heartbeat, args=(group.name, expected, stop), daemon=True)
    ticker.start()
    started = time.monotonic()
    try:
        with log_path.open("w") as log:
            log.write("$ " + " ".join(cmd) + f"\n(cwd {module})\n")
            log.flush()
            result = subprocess.run(cmd, cwd=module, stdout=log, stderr=subprocess.STDOUT, env=env)
    finally:
        stop.set()
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise BinaryError(
            f"go build of {group.name} failed (exit {result.returncode})\n"
            f"  command: {' '.join(cmd)}\n  in: {module}\n  log: {log_path}\n  last lines:\n    " + "\n    ".join(tail)
        )
    for binary in group.binaries:
        built = staging / binary
        if not built.is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise BinaryError(f"go build of {group.name} produced no {binary}; log: {log_path}")
        os.replace(built, bin_dir / binary)  # atomic: a binary in bin/ is always complete
    shutil.rmtree(staging, ignore_errors=True)
    _say(f"built {', '.join(group.binaries)} in {time.monotonic() - started:.0f}s")


def ensure_binaries(names: tuple[str, ...] = ALL_BINARIES) -> Path:
    """Return a directory holding ``names``, building what is missing.

    Raises BinaryError with one actionable sentence when that is impossible (no Go, no source checkout, a
    failed build with its log path).
    """
    assets = _assets_dir()
    if assets is not None:
        missing = [n for n in names if not (assets / n).is_file()]
        if not missing:
            return assets
        _say(f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}; building those into the cache")
    bin_dir = cache_dir() / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for group in _groups():
        wanted = [b for b in group.binaries if b in names]
        if not group.node and wanted and not all((bin_dir / b).is_file() for b in wanted):
            _build_group(group, bin_dir, cache_dir() / "logs")
    return bin_dir


def ensure_node_binaries(names: tuple[str, ...] = NODE_BINARIES) -> dict[str, Path]:
    """Paths of the real test node's binaries (kubelet, kube-proxy, kubectl, containerd, ctr, pause, ...),
    building the groups that miss one into their version-keyed cache folders.

    The kubelet group compiles against the control plane's module, so build it after the control plane (the Go
    build cache then makes it ~2 min instead of a second cold build).
    """
    found: dict[str, Path] = {}
    for group in _groups():
        wanted = [b for b in group.binaries if b in names]
        if not group.node or not wanted:
            continue
        bin_dir = group.bin_dir()
        bin_dir.mkdir(parents=True, exist_ok=True)
        if not all((bin_dir / b).is_file() for b in wanted):
            _build_group(group, bin_dir, bin_dir.parent / "logs")
        found.update({b: bin_dir / b for b in wanted})
    missing = sorted(set(names) - set(found))
    if missing:
        raise BinaryError(f"no build group makes {', '.join(missing)}")
    return found


def node_bin_dir(name: str) -> Path:
    """The cache folder a real-node binary is (or will be) built into, without building it (image recipes hash
    what it holds)."""
    for group in _groups():
        if group.node and name in group.binaries:
            return group.bin_dir()
    raise BinaryError(f"no real-node build group makes {name}")


def binary(name: str, names: tuple[str, ...] = ALL_BINARIES) -> Path:
    """Path of one binary, preferring KUBEBUILDER_ASSETS."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / name).is_file():
        return Path(assets) / name
    return cache_dir() / "bin" / name


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m devtools.controlplane``."""
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "ensure"
    try:
        if command == "ensure":
            started = time.monotonic()
            path = ensure_binaries()
            size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
            _say(f"control-plane binaries ready in {path} ({size / 2**20:.0f} MiB, {time.monotonic() - started:.0f}s)")
            return 0
        if command == "path":
            print(cache_dir() / "bin")
            return 0
    except BinaryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"usage: python -m devtools.controlplane [ensure|path] (got {command!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
