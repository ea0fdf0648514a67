"""The pod sandbox image of the real test node, packed by hand: the node has no registry to pull pause from.

The image holds one file, ``/pause`` (hack/node/pause, a static Go program), in an OCI image layout written as a
tar archive that ``ctr -n k8s.io images import`` accepts; containerd's config pins it as the sandbox image, so it
is never pulled or garbage-collected.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from devtools.controlplane.binaries import PAUSE_VERSION

PAUSE_IMAGE = f"localhost/lanes/pause:{PAUSE_VERSION}"


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0  # reproducible: the same binary gives the same digests
    tar.addfile(info, io.BytesIO(data))


def _blob(tar: tarfile.TarFile, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    _add(tar, f"blobs/sha256/{digest}", data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_archive(binary: Path, archive: Path, ref: str = PAUSE_IMAGE) -> Path:
    """Write an OCI archive of a one-layer image whose entrypoint is ``binary`` (as /pause); returns ``archive``."""
    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        _add(layer, "pause", binary.read_bytes(), mode=0o755)
    layer_bytes = layer_buffer.getvalue()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]},
    }
    staging = archive.with_name(archive.name + ".tmp")
    with tarfile.open(staging, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        config_desc = _blob(tar, json.dumps(config, sort_keys=True).encode())
        layer_desc = _blob(tar, layer_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_desc}],
        }
        manifest_desc = _blob(tar, json.dumps(manifest, sort_keys=True).encode())
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    **manifest_desc,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref},
                }
            ],
        }
        _add(tar, "index.json", json.dumps(index, sort_keys=True).encode())
    os.replace(staging, archive)
    return archive


def ensure_pause_archive(binary: Path) -> Path:
    """The pause image's archive next to its binary in the cache, rewritten when the binary is newer."""
    archive = binary.parent.parent / f"pause-{PAUSE_VERSION}.oci.tar"
    if not archive.is_file() or archive.stat().st_mtime < binary.stat().st_mtime:
        oci_archive(binary, archive)
    return archive
