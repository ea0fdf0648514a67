"""What the controller is told at start: names of the objects it manages, timings, modes.

Plain frozen dataclasses, validated once at construction, so a bad combination (a renew deadline longer than
the lease, a CA that would expire before its successor is trusted) fails at start with one clear line instead
of showing up as a split brain or an outage months later.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from webhook.contract import names

if TYPE_CHECKING:
    from webhook.controller.routing.settings import ReconcilerSettings

DAY = 86_400.0


class SettingsError(ValueError):
    """An invalid controller setting; the message names it."""


class RepairMode(StrEnum):
    """What the repair loop does with a pod admitted without injection."""

    OFF = "off"
    REPORT = "report"  # Event, metric, log line
    EVICT = "evict"  # report, then evict through the Eviction API (PodDisruptionBudgets apply)


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's leader election defaults: a leader that cannot renew for ``renew_deadline`` stops acting,
    and ``lease_duration - renew_deadline`` later (the safety margin) another replica may take over."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise SettingsError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period} < {self.renew_deadline} < {self.lease_duration}"
            )


@dataclass(frozen=True)
class CertTiming:
    """Lifetimes of the self-managed CA and serving certificate and the pauses of a CA rotation.

    A certificate is renewed at ``rotate_fraction`` of its lifetime, or ``renew_before`` before it expires,
    whichever comes first. During a CA rotation the new CA is published next to the old one, the serving
    certificate switches ``propagation`` seconds after the API server has the new bundle, and the old CA is
    dropped ``overlap`` seconds after that (every replica has reloaded by then).
    """

    ca_lifetime: float = 365 * DAY
    leaf_lifetime: float = 90 * DAY
    rotate_fraction: float = 2 / 3
    renew_before: float = 0.0
    propagation: float = 30.0
    overlap: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.rotate_fraction < 1:
            raise SettingsError(f"rotate fraction must be between 0 and 1, got {self.rotate_fraction}")
        if self.leaf_lifetime <= 0 or self.ca_lifetime <= 0:
            raise SettingsError("certificate lifetimes must be positive")
        if self.leaf_lifetime > self.ca_lifetime:
            raise SettingsError("the serving certificate cannot outlive its CA: leaf lifetime > CA lifetime")
        if self.propagation < 0 or self.overlap < 0 or self.renew_before < 0:
            raise SettingsError("propagation, overlap and renew-before must not be negative")
        if self.renew_before >= self.leaf_lifetime:
            raise SettingsError("renew-before must be shorter than the serving certificate's lifetime")
        # The old CA must still be valid when the serving certificate it signed is replaced and dropped.
        remaining = max(self.ca_lifetime * (1 - self.rotate_fraction), min(self.renew_before, self.ca_lifetime))
        if remaining <= self.propagation + self.overlap:
            raise SettingsError(
                "the CA is renewed too late: its remaining lifetime at renewal "
                f"({remaining:.0f}s) must exceed propagation + overlap ({self.propagation + self.overlap:.0f}s)"
            )


@dataclass(frozen=True)
class RepairSettings:
    """Repair of pods admitted without injection. Evictions are a token bucket: ``rate`` per second, ``burst``
    at once; a PodDisruptionBudget refusal (429) is retried after ``retry_after`` seconds."""

    mode: RepairMode = RepairMode.REPORT
    rate: float = 0.2
    burst: int = 2
    retry_after: float = 30.0
    #: After evicting a pod, wait this long for its replacement before evicting another pod of the same owner.
    replacement_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.retry_after <= 0:
            raise SettingsError("eviction rate, burst and retry must be positive")


def default_identity() -> str:
    """Pod name in a cluster (``POD_NAME`` from the downward API), else host and process."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ControllerSettings:
    """Everything :func:`webhook.controller.run.run_controller` needs besides the API client."""

    namespace: str
    """The webhook's own namespace: Lease, Secret and Service live here; its pods are never repaired."""
    service: str = "lanes"
    webhook_config: str = "lanes"
    """MutatingWebhookConfiguration whose caBundle the controller keeps current."""
    validating_config: str | None = None
    """ValidatingWebhookConfiguration whose caBundle is kept current too, if it exists (None: none is installed;
    opt-in so that a cluster without it needs no RBAC for it)."""
    secret_name: str = ""
    """Secret with tls.crt, tls.key, ca.crt; defaults to ``<service>-tls``."""
    cert_dir: Path | None = None
    """Where every replica writes tls.crt/tls.key/ca.crt for the admission server; None: no files."""
    manage_certs: bool = True
    """Create/rotate the CA and serving certificate and patch caBundle (off in cert-manager mode)."""
    extra_dns_names: tuple[str, ...] = ()
    extra_ip_addresses: tuple[str, ...] = ()
    lease_name: str = "lanes-controller"
    identity: str = field(default_factory=default_identity)
    namespace_selector: str = f"{names.NAMESPACE_ENABLE_LABEL}={names.NAMESPACE_ENABLE_VALUE}"
    """Label selector of enabled namespaces: the same as the webhook's namespaceSelector."""
    default_register_delay: float = 0.0
    """Register delay for gated pods that record none (no lanes.io/status, no annotation)."""
    gate_concurrency: int = 8
    lease: LeaseTiming = field(default_factory=LeaseTiming)
    certs: CertTiming = field(default_factory=CertTiming)
    repair: RepairSettings = field(default_factory=RepairSettings)
    routing: ReconcilerSettings | None = None
    """Lane routing (webhook/controller/routing): None leaves Lanes alone (and needs no RBAC for them)."""

    def __post_init__(self) -> None:
        if not self.namespace:
            raise SettingsError("the controller's namespace is required")
        if not self.secret_name:
            object.__setattr__(self, "secret_name", f"{self.service}-tls")
        if self.gate_concurrency < 1:
            raise SettingsError("gate concurrency must be at least 1")
        if self.default_register_delay < 0:
            raise SettingsError("default register delay must not be negative")

    @property
    def dns_names(self) -> tuple[str, ...]:
        """The names the API server may use for the Service, then any extra ones."""
        svc, ns = self.service, self.namespace
        base = (svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local")
        return base + tuple(n for n in self.extra_dns_names if n not in base)
