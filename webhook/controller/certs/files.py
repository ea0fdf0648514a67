"""Every replica mirrors the certificate Secret into files the admission server reads.

The server (``webhook.admission.serving.CertReloader``) re-reads ``tls.crt``/``tls.key`` when their stat changes, so the
files must switch from one complete pair to the next in one step: a reader must never see a new certificate with
the old key. The layout is the kubelet's own for Secret volumes (``AtomicWriter``), which the server already
handles:

    cert-dir/..2024_05_01_10_00_00.123456789/{tls.crt,tls.key,ca.crt}   one directory per version
    cert-dir/..data -> ..2024_05_01_10_00_00.123456789                   swapped by rename(2): atomic
    cert-dir/tls.crt -> ..data/tls.crt                                   stable names the server opens

A new version is written into a fresh directory, fsynced, then ``..data`` is re-pointed with a single rename;
older version directories are removed afterwards. No file is ever modified in place.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from webhook.controller.certs.material import serving_files
from webhook.kube.client import JSON, Kube, path_segment
from webhook.kube.reflector import Reflector

log = logging.getLogger("lanes.controller.certfiles")

DATA = "..data"


def read_current(directory: Path, names: list[str]) -> dict[str, bytes] | None:
    try:
        return {name: (directory / name).read_bytes() for name in names}
    except OSError:
        return None


def write_atomically(directory: Path, files: dict[str, bytes]) -> bool:
    """Publish ``files`` in ``directory`` as one version; False when they are already what is there."""
    directory.mkdir(parents=True, exist_ok=True)
    if read_current(directory, sorted(files)) == files:
        return False
    stamp = dt.datetime.now(dt.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f_")
    version = Path(tempfile.mkdtemp(prefix=stamp, dir=directory))
    for name, content in files.items():
        path = version / name
        with path.open("wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        path.chmod(0o600 if name.endswith(".key") else 0o644)
    version.chmod(0o755)
    _fsync_dir(version)
    _replace_symlink(directory / DATA, version.name)
    for name in files:
        link = directory / name
        target = f"{DATA}/{name}"
        if not (link.is_symlink() and os.readlink(link) == target):
            _replace_symlink(link, target)
    _fsync_dir(directory)
    for entry in directory.iterdir():
        if entry.name.startswith("..") and entry.name != DATA and entry.is_dir() and entry != version:
            shutil.rmtree(entry, ignore_errors=True)
    return True


def _replace_symlink(link: Path, target: str) -> None:
    temporary = link.with_name(link.name + ".tmp")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    os.symlink(target, temporary)
    os.replace(temporary, link)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CertFiles:
    """Watches the certificate Secret and keeps ``cert_dir`` equal to it (runs on every replica)."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        secret_name: str,
        cert_dir: Path | None,
        *,
        on_secret: Callable[[JSON | None], None] | None = None,
    ) -> None:
        self.cert_dir = cert_dir
        self.secret_name = secret_name
        self.on_secret = on_secret
        self.written = threading.Event()
        self.reflector = Reflector(
            kube,
            f"/api/v1/namespaces/{path_segment(namespace)}/secrets",
            name="secret",
            field_selector=f"metadata.name={secret_name}",
            on_event=self._on_event,
        )

    def secret(self) -> JSON | None:
        """The latest Secret seen by the watch."""
        items = self.reflector.items()
        return items[0] if items else None

    def _on_event(self, kind: str, secret: JSON, old: JSON | None) -> None:
        current = None if kind == "DELETED" else secret
        if current is not None and self.cert_dir is not None:
            files = serving_files(current)
            if files is None:
                log.warning("certificate Secret has no tls.crt/tls.key yet", extra={"secret": self.secret_name})
            else:
                try:
                    if write_atomically(self.cert_dir, files):
                        log.info(
                            "serving certificate files updated",
                            extra={"dir": str(self.cert_dir), "resourceVersion": _version(current)},
                        )
                    self.written.set()
                except OSError as exc:
                    log.error("cannot write certificate files", extra={"dir": str(self.cert_dir), "error": str(exc)})
        if self.on_secret is not None:
            self.on_secret(current)

    def wait_written(self, timeout: float | None = None) -> bool:
        """Block until the files hold a certificate from the Secret (the server cannot start before)."""
        return self.written.wait(timeout)

    def run(self, stop: threading.Event) -> None:
        self.reflector.run(stop)

    def close(self) -> None:
        self.reflector.close()


def _version(secret: JSON) -> str:
    return str((secret.get("metadata") or {}).get("resourceVersion") or "")
