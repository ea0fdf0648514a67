"""OCI image archives: written for ``ctr -n k8s.io images import``, read back by the image tests.

buildah pushes an OCI image layout folder; we add the ``io.containerd.image.name`` annotation to its index (the
name containerd gives the imported image, whatever ``--base-name`` or digest rules ``ctr`` would otherwise apply)
and tar the folder. Reading unpacks the layers in order, honouring whiteouts, so a test can look at exactly the
files containerd would run.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"


def write_archive(layout_dir: Path, ref: str, output: Path) -> None:
    """Tar the OCI layout ``layout_dir`` into ``output`` (atomically), its index naming the image ``ref``."""
    index_path = layout_dir / "index.json"
    index = json.loads(index_path.read_text())
    for manifest in index.get("manifests", []):
        annotations = manifest.setdefault("annotations", {})
        annotations[CONTAINERD_NAME] = ref
        annotations[OCI_REF_NAME] = ref.rsplit(":", 1)[-1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    index_path.write_text(json.dumps(index, separators=(",", ":")))
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in ["oci-layout", "index.json", *sorted(
            p.relative_to(layout_dir).as_posix() for p in (layout_dir / "blobs").rglob("*") if p.is_file()
        )]:
            info = tar.gettarinfo(str(layout_dir / path), arcname=path)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with (layout_dir / path).open("rb") as data:
                tar.addfile(info, data)
    os.replace(partial, output)


@dataclass(frozen=True)
class ArchiveImage:
    """What an archive holds: the image name, its manifest, its config, and the layer blobs in order."""

    name: str
    manifest: dict[str, Any]
    config: dict[str, Any]

    @property
    def runtime(self) -> dict[str, Any]:
        """The OCI config's ``config`` part: User, Entrypoint, Cmd, Env, WorkingDir, ..."""
        return dict(self.config.get("config") or {})

    @property
    def layer_digests(self) -> list[str]:
        return [layer["digest"] for layer in self.manifest["layers"]]


def _blob(tar: tarfile.TarFile, digest: str) -> bytes:
    algorithm, value = digest.split(":", 1)
    member = tar.extractfile(f"blobs/{algorithm}/{value}")
    if member is None:
        raise ValueError(f"archive lacks blob {digest}")
    return member.read()


def read_archive(archive: Path) -> ArchiveImage:
    """The single image of ``archive`` (as ``write_archive`` makes them)."""
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        (entry,) = index["manifests"]
        manifest = json.loads(_blob(tar, entry["digest"]))
        config = json.loads(_blob(tar, manifest["config"]["digest"]))
    return ArchiveImage(entry.get("annotations", {}).get(CONTAINERD_NAME, ""), manifest, config)


def uncompressed_size(archive: Path) -> int:
    """Bytes of the image's layers once unpacked (from each gzip member's length trailer; layers < 4 GiB)."""
    image = read_archive(archive)
    total = 0
    with tarfile.open(archive) as tar:
        for layer in image.manifest["layers"]:
            algorithm, value = layer["digest"].split(":", 1)
            member = tar.extractfile(f"blobs/{algorithm}/{value}")
            assert member is not None
            head = member.read(2)
            if head != b"\x1f\x8b":
                total += int(layer["size"])
                continue
            member.seek(-4, io.SEEK_END)
            total += int.from_bytes(member.read(4), "little")
    return total


def unpack_rootfs(archive: Path, dest: Path) -> None:
    """Apply the image's layers in order into ``dest`` (whiteouts delete, opaque folders are emptied)."""
    image = read_archive(archive)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        for layer in image.manifest["layers"]:
            data = _blob(tar, layer["digest"])
            if layer.get("mediaType", "").endswith("gzip") or data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as layer_tar:
                members = []
                for member in layer_tar.getmembers():
                    path = PurePosixPath(_clean(member.name))
                    if path.name == ".wh..wh..opq":
                        folder = dest / path.parent
                        if folder.is_dir():
                            for child in folder.iterdir():
                                _remove(child)
                    elif path.name.startswith(".wh."):
                        _remove(dest / path.parent / path.name[len(".wh."):])
                    else:
                        members.append(member)
                layer_tar.extractall(dest, members=members, filter="tar")
    dest.chmod(0o755)  # a container's / (a temporary folder starts as 0700, closed to the image's user)


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/") or "."


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
