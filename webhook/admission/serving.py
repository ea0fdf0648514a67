"""uvicorn over TLS, with certificate hot reload and a drain-first graceful shutdown.

Certificate reload. The serving certificate is a Secret volume (or cert-manager's) that the kubelet updates by
swapping a symlink, and the Lanes controller rotates it well before expiry. :class:`CertReloader` stats the
two files every few seconds (inode, size, mtime: a symlink swap changes all three); on a change it builds
a *fresh* ``SSLContext`` from the pair, and only if that succeeds (readable, PEM, key matches certificate)
does it become current. The listening context's ``sni_callback``, which OpenSSL calls for every ClientHello
(with or without SNI), moves each new connection onto the current context. Handshakes never see a
half-loaded context, established connections keep theirs, and a half-written or mismatched pair is logged and
the old one kept.

Shutdown. On SIGTERM the kubelet has also started removing the pod from the Service's endpoints, but the API
server learns that only after a while, and until then it keeps sending admission calls here. So the first
SIGTERM (or SIGINT) turns /readyz to 503, keeps serving for ``shutdown_delay`` seconds, adds
``Connection: close`` to responses so keep-alive connections move elsewhere, and then lets uvicorn stop
accepting and finish in-flight requests (bounded by ``shutdown_timeout``). A second signal skips the rest of
the delay. The process exits 0: a clean, requested stop.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import math
import os
import signal
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:  # runtime imports stay light so `lanes-webhook` reports startup errors fast
    from fastapi import FastAPI

    from webhook.admission.app import Lifecycle
    from webhook.admission.metrics import Metrics

log = logging.getLogger("lanes.serve")

DEFAULT_SHUTDOWN_DELAY = 5.0
DEFAULT_SHUTDOWN_TIMEOUT = 20.0
DEFAULT_CERT_CHECK_INTERVAL = 2.0
#: Longer than Go's default idle-connection timeout (90 s, used by the API server's webhook client): if the
#: server closed idle connections first, a request racing the close would fail, and POSTs are not retried.
DEFAULT_KEEP_ALIVE_TIMEOUT = 120


#: uvicorn's compiled HTTP/1.1 parser and event loop (its "standard" install). Measured under callgrind with TLS and
#: keep-alive (bench/admission.py, docs/performance.md section 1): Lanes executes a third fewer instructions per
#: small-pod admission with them than with the pure-Python h11 parser on the asyncio loop. Both are dependencies of
#: the webhook; the fallbacks serve platforms without their wheels (uvloop has none for Windows).
HTTP_IMPLEMENTATION = "httptools" if importlib.util.find_spec("httptools") else "h11"
LOOP_IMPLEMENTATION = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


class CertificateError(Exception):
    """A certificate/key pair that cannot serve; the message names the file and the problem in one line."""


@dataclass(frozen=True)
class LoadedPair:
    """A validated certificate/key pair and the server context built from it."""

    context: ssl.SSLContext
    subject: str
    not_after: float
    sha256: str


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None


def new_server_context() -> ssl.SSLContext:
    """A server context with the policy every Lanes listener uses: TLS 1.2 or newer, HTTP/1.1 over ALPN."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


def load_pair(cert_file: str | Path, key_file: str | Path) -> LoadedPair:
    """Validate a PEM certificate chain and private key and build a server context from them.

    Parsed with cryptography first, so errors say which file is wrong and how, rather than OpenSSL's
    "PEM lib (_ssl.c:...)".
    """
    cert_path, key_path = Path(cert_file), Path(key_file)
    cert_pem = _read(cert_path, "certificate")
    key_pem = _read(key_path, "key")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise CertificateError(f"certificate file {cert_path} does not contain a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        reason = "is encrypted" if isinstance(exc, TypeError) else "does not contain a PEM private key"
        raise CertificateError(f"key file {key_path} {reason}") from None
    leaf = chain[0]
    if leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CertificateError(f"certificate {cert_path} does not match key {key_path}")
    context = new_server_context()
    try:
        # Reads the files again: if they changed since, OpenSSL's own key check still guarantees a valid pair.
        context.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(f"cannot load {cert_path} with {key_path}: {exc}") from None
    return LoadedPair(
        context=context,
        subject=leaf.subject.rfc4514_string(),
        not_after=leaf.not_valid_after_utc.timestamp(),
        sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )


def _signature(*paths: Path) -> tuple[tuple[int, int, int, int], ...] | None:
    """What a rotation changes: (device, inode, size, mtime) of each file behind its symlinks."""
    try:
        stats = [os.stat(p) for p in paths]
    except OSError:
        return None
    return tuple((s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


class CertReloader:
    """Serves the current certificate/key pair from disk; :attr:`context` goes to the listening socket."""

    def __init__(
        self,
        cert_file: str | Path,
        key_file: str | Path,
        *,
        interval: float = DEFAULT_CERT_CHECK_INTERVAL,
        metrics: Metrics | None = None,
    ) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.interval = interval
        self.metrics = metrics
        self._signature = _signature(self.cert_file, self.key_file)
        pair = load_pair(self.cert_file, self.key_file)  # CertificateError propagates: no pair, no server
        self.current = pair
        self.context = pair.context
        self.context.sni_callback = self._select_context
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._note_loaded(pair, initial=True)

    def _select_context(self, conn: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        current = self.current.context
        if current is not context:
            conn.context = current

    def check(self) -> bool:
        """Reload if the files changed since the last look; True when a new pair went into service."""
        signature = _signature(self.cert_file, self.key_file)
        if signature == self._signature:
            return False
        try:
            pair = load_pair(self.cert_file, self.key_file)
        except CertificateError as exc:
            # Remember this state so a bad pair is reported once, not every interval; any further write to the
            # files changes the signature and triggers another attempt.
            self._signature = signature
            log.warning("keeping the current certificate: %s", exc, extra={"subject": self.current.subject})
            if self.metrics:
                self.metrics.cert_reloads.labels("failure").inc()
            return False
        # If the files moved again while loading, look again next time (the loaded pair is valid either way).
        self._signature = signature if _signature(self.cert_file, self.key_file) == signature else None
        self.current = pair
        self._note_loaded(pair, initial=False)
        return True

    def _note_loaded(self, pair: LoadedPair, *, initial: bool) -> None:
        remaining_days = (pair.not_after - time.time()) / 86400
        log.log(
            logging.WARNING if remaining_days < 0 else logging.INFO,
            "serving certificate loaded" if initial else "serving certificate reloaded",
            extra={
                "subject": pair.subject,
                "sha256": pair.sha256,
                "not_after": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(pair.not_after)),
                "expired": remaining_days < 0,
            },
        )
        if self.metrics:
            self.metrics.cert_not_after.set(pair.not_after)
            if not initial:
                self.metrics.cert_reloads.labels("success").inc()

    def start(self) -> None:
        """Watch the files in a daemon thread (stat is microseconds; loading happens only on change)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lanes-cert-reloader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the watcher die: the next rotation must still be picked up
                log.exception("certificate check failed")


class LanesServer(uvicorn.Server):
    """uvicorn.Server with the drain-first shutdown and the certificate reloader's lifetime."""

    def __init__(
        self, config: uvicorn.Config, lifecycle: Lifecycle, reloader: CertReloader, shutdown_delay: float
    ) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.reloader = reloader
        self.shutdown_delay = shutdown_delay
        self._exit_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin_shutdown(self) -> None:
        """Start draining: /readyz -> 503 now, stop accepting after ``shutdown_delay``. Idempotent; a second
        call ends the delay early."""
        if self._exit_at is not None:
            log.info("second shutdown request: stopping now")
            self._exit_at = time.monotonic()
            return
        self.lifecycle.begin_drain()
        self._exit_at = time.monotonic() + self.shutdown_delay
        log.info(
            "shutdown requested: readiness off, serving for %.1fs before closing",
            self.shutdown_delay,
            extra={"shutdown_delay": self.shutdown_delay},
        )

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Replaces uvicorn's handler, which stops at once and re-raises the signal afterwards (exit 143).
        if sig == signal.SIGINT and self._exit_at is not None and self.should_exit:
            self.force_exit = True
            return
        if self._loop is not None:  # do the work (logging, locks) on the loop, not inside the signal handler
            self._loop.call_soon_threadsafe(self.begin_shutdown)
        else:
            self.begin_shutdown()

    async def on_tick(self, counter: int) -> bool:
        if self._exit_at is not None and time.monotonic() >= self._exit_at:
            self.should_exit = True
        return await super().on_tick(counter)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        if not self.config.loaded:
            self.config.load()
        self.config.ssl = self.reloader.context  # our context, not one uvicorn builds from file names
        self._loop = asyncio.get_running_loop()
        self.reloader.start()
        try:
            await super().serve(sockets)
        finally:
            self.reloader.stop()


def create_server(
    app: FastAPI,
    *,
    host: str,
    port: int,
    cert_file: str | Path,
    key_file: str | Path,
    shutdown_delay: float = DEFAULT_SHUTDOWN_DELAY,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    cert_check_interval: float = DEFAULT_CERT_CHECK_INTERVAL,
    keep_alive_timeout: int = DEFAULT_KEEP_ALIVE_TIMEOUT,
    access_log: bool = False,
    http: str = HTTP_IMPLEMENTATION,
    loop: str = LOOP_IMPLEMENTATION,
) -> LanesServer:
    """A ready-to-run server for an app from :func:`webhook.admission.app.create_app`.

    Loads the certificate pair now, so a bad pair raises :class:`CertificateError` before anything listens.
    Run it with ``server.run()`` (in the main thread it installs the SIGTERM/SIGINT handlers) or
    ``await server.serve()``. ``http`` and ``loop`` are uvicorn's implementation names; the defaults are the measured
    fastest installed (the benchmark's peers pass others to compare).
    """
    lifecycle: Lifecycle = app.state.lifecycle
    metrics: Metrics | None = getattr(app.state, "metrics", None)
    reloader = CertReloader(cert_file, key_file, interval=cert_check_interval, metrics=metrics)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # keep webhook.cli.jsonlog's handlers
        access_log=access_log,
        lifespan="off",
        loop=loop,
        http=http,
        timeout_keep_alive=keep_alive_timeout,
        timeout_graceful_shutdown=math.ceil(max(0.0, shutdown_timeout)),  # 0: do not wait for in-flight
        server_header=False,
        proxy_headers=False,
    )
    return LanesServer(config, lifecycle, reloader, shutdown_delay)
