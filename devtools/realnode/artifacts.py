"""Everything the real node needs on disk, found in the cache or built once: binaries, Debian tools, images."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devtools.controlplane.binaries import ensure_binaries, ensure_node_binaries
from devtools.realnode.debian import DebianTools, ensure_debian_tools
from devtools.realnode.pause import PAUSE_IMAGE, ensure_pause_archive

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


@dataclass(frozen=True)
class NodeArtifacts:
    binaries: dict[str, Path]
    debian: DebianTools
    #: OCI archives imported into containerd at node start (the pause image first)
    images: tuple[Path, ...]
    #: image references by name (``helper``, ``webhook``, ``sample-app``, and ``coredns``, the cluster DNS) when
    #: devtools.images provided them
    refs: dict[str, str] = field(default_factory=dict)
    sandbox_image: str = PAUSE_IMAGE


def project_images() -> dict[str, object]:
    """The project's images from devtools.images (helper, webhook, sample app), when that package exists."""
    try:
        from devtools import images
    except ImportError:
        return {}
    ensure = getattr(images, "ensure_images", None)
    if ensure is None:  # devtools.images without the contract's entry point yet
        return {}
    result: dict[str, object] = ensure()
    node_images = getattr(images, "NODE_IMAGES", ())
    if "coredns" in node_images:  # the cluster DNS (devtools/realnode/coredns.py), built like the others
        result.update(ensure(("coredns",)))
    return result


def ensure_artifacts(with_project_images: bool = True) -> NodeArtifacts:
    """Build or find what is missing; the first run takes a few minutes (printed), later runs a second."""
    started = time.monotonic()
    # the control plane runs inside the node's namespace too (no kwok: the node is real)
    ensure_binaries(CONTROL_PLANE)
    binaries = ensure_node_binaries()
    debian = ensure_debian_tools()
    archives = [ensure_pause_archive(binaries["pause"])]
    refs: dict[str, str] = {}
    if with_project_images:
        for name, image in project_images().items():
            archives.append(Path(image.archive))  # type: ignore[attr-defined]
            refs[name] = str(image.ref)  # type: ignore[attr-defined]
    elapsed = time.monotonic() - started
    if elapsed > 5:
        print(f"[lanes realnode] node artifacts ready in {elapsed:.0f}s", file=sys.stderr, flush=True)
    return NodeArtifacts(binaries=binaries, debian=debian, images=tuple(archives), refs=refs)
