"""Wiring: what runs on every replica, what runs only on the leader, and how a leader term starts and stops.

Thread-based, because the kubernetes client is synchronous; everything is daemon threads around blocking
watches and work queues, started by :meth:`Controller.start` and stopped by :meth:`Controller.stop`, so it fits into
any process: ``python -m webhook.controller`` (standalone), or ``lanes-webhook serve`` next to uvicorn, where it
is one call::

    controller = Controller(settings, api_client, metrics=ControllerMetrics(app_metrics.registry))
    controller.start()
    controller.wait_for_certificates(timeout=60)   # the server needs its cert files before it listens
    ...                                            # server.run()
    controller.stop()                              # releases the Lease: a successor takes over at once

Every replica: the certificate Secret mirror (files for the admission server) and the leader election.
The leader, per term: namespace and pod watches feeding the readiness gate and repair, the certificate
rotation and watches of the webhook configurations (so a ``helm upgrade`` that resets ``caBundle`` is repaired), and,
when configured, the Lane reconciler (webhook/controller/routing).
Losing the Lease ends the term at once: every write path first asks the elector (whose answer expires at the
renew deadline by itself), watches are closed and work queues shut down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from webhook.controller import pods as podfacts
from webhook.controller.certs.files import CertFiles
from webhook.controller.certs.rotation import CertRotation
from webhook.controller.certs.webhooks import GROUP, MUTATING, VALIDATING
from webhook.controller.events import EventRecorder
from webhook.controller.gate import Gate
from webhook.controller.leader import LeaderElector
from webhook.controller.metrics import ControllerMetrics
from webhook.controller.repair import Repair
from webhook.controller.settings import ControllerSettings, RepairMode
from webhook.kube.client import JSON, Kube
from webhook.kube.reflector import Reflector

log = logging.getLogger("lanes.controller")


class LeaderTerm:
    """The loops of one period of leadership; built fresh for every term so nothing leaks between terms."""

    def __init__(
        self, kube: Kube, settings: ControllerSettings, elector: LeaderElector, metrics: ControllerMetrics
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        write_timeout = elector.write_timeout

        def error_counter(resource: str) -> Callable[[], None]:
            return lambda: metrics.watch_restarts.labels(resource).inc()

        self.namespaces = Reflector(
            kube,
            "/api/v1/namespaces",
            name="namespaces",
            label_selector=settings.namespace_selector,
            on_event=self._on_namespace,
            on_error=error_counter("namespaces"),
        )
        self.pods = Reflector(
            kube,
            "/api/v1/pods",
            name="pods",
            transform=podfacts.project,
            on_event=self._on_pod,
            on_error=error_counter("pods"),
            on_resumed=self._on_resumed,
        )
        enabled = self.namespace_enabled
        self.gate = Gate(
            kube,
            self.pods,
            enabled,
            write_timeout,
            metrics,
            default_delay=settings.default_register_delay,
            concurrency=settings.gate_concurrency,
        )
        self.repair: Repair | None = None
        if settings.repair.mode is not RepairMode.OFF:
            self.repair = Repair(
                kube,
                self.pods,
                enabled,
                write_timeout,
                metrics,
                EventRecorder(kube, settings.identity),
                own_namespace=settings.namespace,
                settings=settings.repair,
            )
        self.routing: Any = None
        if settings.routing is not None:
            # Lane routing (leader only): shares this term's pod watch instead of opening a second one.
            from webhook.controller.routing.reconciler import LaneReconciler

            self.routing = LaneReconciler(
                kube,
                settings=settings.routing,
                write_timeout=write_timeout,
                recorder=EventRecorder(kube, settings.identity),
                pods=self.pods,
            )
        self.rotation: CertRotation | None = None
        self.config_watches: list[Reflector] = []
        if settings.manage_certs:
            self.rotation = CertRotation(kube, settings, write_timeout, metrics)
            for resource, name in ((MUTATING, settings.webhook_config), (VALIDATING, settings.validating_config)):
                if name:
                    self.config_watches.append(
                        Reflector(
                            kube,
                            f"{GROUP}/{resource}",
                            name=resource,
                            field_selector=f"metadata.name={name}",
                            on_event=self._on_config,
                            on_error=error_counter(resource),
                            on_resumed=self._on_resumed,
                        )
                    )

    def namespace_enabled(self, name: str) -> bool:
        return bool(name) and self.namespaces.get(name) is not None

    # -- fan-out of watch events ---------------------------------------------------------------------------

    def _on_pod(self, kind: str, pod: JSON, old: JSON | None) -> None:
        self.gate.on_pod(kind, pod, old)
        if self.repair is not None:
            self.repair.on_pod(kind, pod, old)
        if self.routing is not None:
            self.routing.on_pod(kind, pod, old)

    def _on_namespace(self, kind: str, namespace: JSON, old: JSON | None) -> None:
        self.gate.on_namespace(kind, namespace, old)
        if self.repair is not None:
            self.repair.on_namespace(kind, namespace, old)

    def _on_config(self, kind: str, config: JSON, old: JSON | None) -> None:
        if self.rotation is not None:
            self.rotation.poke()

    def _on_resumed(self) -> None:
        self.gate.retry_now()
        if self.rotation is not None:
            self.rotation.poke()

    def secret_changed(self) -> None:
        if self.rotation is not None:
            self.rotation.poke()

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._spawn("namespaces", lambda: self.namespaces.run(self.stop_event))
        self._spawn("pods", self._run_pods)
        for watch in self.config_watches:
            self._spawn(watch.name, lambda w=watch: w.run(self.stop_event))  # type: ignore[misc]
        if self.rotation is not None:
            rotation = self.rotation
            self._spawn("certs", lambda: rotation.run(self.stop_event))
        if self.routing is not None:
            routing = self.routing
            self._spawn("routing", lambda: None if self.stop_event.is_set() else routing.start())

    def _run_pods(self) -> None:
        # Pods are judged by their namespace: start once the enabled namespaces are known, so the first list
        # is not followed by a re-evaluation of every pod when the namespaces arrive.
        while not self.stop_event.is_set():
            if self.namespaces.synced.wait(0.2):
                self.pods.run(self.stop_event)
                return

    def _spawn(self, name: str, target: Callable[[], Any]) -> None:
        thread = threading.Thread(target=target, name=f"lanes-leader-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Signal everything to stop now (never blocks: called from the elector when the Lease is lost)."""
        self.stop_event.set()
        for reflector in (self.namespaces, self.pods, *self.config_watches):
            reflector.close()
        self.gate.stop()
        if self.repair is not None:
            self.repair.stop()
        if self.routing is not None:
            self.routing.stop()
        if self.rotation is not None:
            self.rotation.poke()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)
        if self.routing is not None:
            self.routing.join(timeout)

    def alive(self) -> bool:
        """Some thread of this term is still winding down."""
        routing = self.routing is not None and self.routing.alive()
        return routing or any(thread.is_alive() for thread in self._threads)


class Controller:
    """The controller of one process. Thread-safe start/stop; see the module docstring for wiring."""

    def __init__(
        self, settings: ControllerSettings, api_client: Any, *, metrics: ControllerMetrics | None = None
    ) -> None:
        self.settings = settings
        self.kube = Kube(api_client)
        self.metrics = metrics or ControllerMetrics()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._term: LeaderTerm | None = None
        self._old_terms: list[LeaderTerm] = []
        self._threads: list[threading.Thread] = []
        self.elector = LeaderElector(
            self.kube,
            settings.namespace,
            settings.lease_name,
            settings.identity,
            settings.lease,
            on_start=self._start_term,
            on_stop=self._stop_term,
            metrics=self.metrics,
        )
        self.cert_files: CertFiles | None = None
        if settings.manage_certs or settings.cert_dir is not None:
            self.cert_files = CertFiles(
                self.kube,
                settings.namespace,
                settings.secret_name,
                settings.cert_dir,
                on_secret=self._secret_changed,
            )

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leading()

    def start(self) -> None:
        if self._threads:
            return
        if self.cert_files is not None:
            files = self.cert_files
            self._spawn("certfiles", lambda: files.run(self._stop))
        self._spawn("elector", lambda: self.elector.run(self._stop))
        log.info(
            "controller started",
            extra={
                "identity": self.settings.identity,
                "namespace": self.settings.namespace,
                "lease": self.settings.lease_name,
                "manage_certs": self.settings.manage_certs,
                "cert_dir": str(self.settings.cert_dir) if self.settings.cert_dir else None,
                "repair": self.settings.repair.mode.value,
            },
        )

    def wait_for_certificates(self, timeout: float | None = None) -> bool:
        """Block until the certificate files exist (True), or ``timeout`` (False); True without a cert dir."""
        if self.cert_files is None or self.settings.cert_dir is None:
            return True
        return self.cert_files.wait_written(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every loop and release the Lease if held."""
        self._stop.set()
        if self.cert_files is not None:
            self.cert_files.close()
        with self._lock:
            term = self._term
        if term is not None:
            term.stop()
        for thread in self._threads:
            thread.join(timeout)
        for old in [*self._old_terms, *([term] if term else [])]:
            old.join(timeout)
        log.info("controller stopped", extra={"identity": self.settings.identity})

    def _spawn(self, name: str, target: Callable[[], Any]) -> None:
        thread = threading.Thread(target=target, name=f"lanes-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- elector callbacks -------------------------------------------------------------------------------

    def _start_term(self) -> None:
        term = LeaderTerm(self.kube, self.settings, self.elector, self.metrics)
        with self._lock:
            self._term = term
        term.start()

    def _stop_term(self) -> None:
        with self._lock:
            term, self._term = self._term, None
            if term is not None:
                self._old_terms = [t for t in self._old_terms if t.alive()]
                self._old_terms.append(term)
        if term is not None:
            term.stop()

    def _secret_changed(self, secret: JSON | None) -> None:
        with self._lock:
            term = self._term
        if term is not None:
            term.secret_changed()


def start_controller(
    settings: ControllerSettings,
    api_client: Any,
    *,
    registry: Any = None,
    certificates_timeout: float | None = None,
) -> Controller:
    """Start the controller in the background: the one call ``lanes-webhook serve`` needs.

    ``registry`` is the admission server's prometheus registry (so one /metrics shows everything). With
    ``certificates_timeout`` it also waits for the certificate files (the server cannot start before) and raises
    ``TimeoutError`` if they do not appear. Stop it with ``controller.stop()``.
    """
    controller = Controller(settings, api_client, metrics=ControllerMetrics(registry))
    controller.start()
    if certificates_timeout is not None and not controller.wait_for_certificates(certificates_timeout):
        controller.stop()
        raise TimeoutError(
            f"no serving certificate in {settings.cert_dir} after {certificates_timeout:.0f}s: "
            f"is Secret {settings.namespace}/{settings.secret_name} being created (leader elected)?"
        )
    return controller


def run_controller(
    settings: ControllerSettings,
    api_client: Any,
    stop_event: threading.Event,
    *,
    metrics: ControllerMetrics | None = None,
) -> None:
    """Run the controller until ``stop_event`` is set (blocking), then stop it cleanly."""
    controller = Controller(settings, api_client, metrics=metrics)
    controller.start()
    try:
        # In slices: CPython runs signal handlers in the main thread only, and a SIGTERM the kernel hands to one of
        # the worker threads does not wake a wait without a timeout (seen with the sample app: 7 of 90 SIGTERMs
        # ignored). Each wake-up lets a pending handler run, so SIGTERM stops the controller within a second.
        while not stop_event.wait(1.0):
            pass
    finally:
        controller.stop()
