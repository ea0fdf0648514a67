"""What the Lane reconciler is told at start (from the controller's flags, i.e. the Helm values)."""

from __future__ import annotations

from dataclasses import dataclass, field

from webhook.controller.routing.render import RenderOptions


@dataclass(frozen=True)
class ReconcilerSettings:
    options: RenderOptions = field(default_factory=RenderOptions)
    """Render defaults: tag header, outputs of Lanes that name none, the east-west Gateway, cluster domain."""
    workers: int = 2
    resync: float = 600.0
    """Re-render every namespace with Lanes this often (drift repair beyond what the watches show)."""
    discovery_interval: float = 30.0
    """How often to look for a Gateway API / Istio API that was missing at start."""
    retry_conflict: float = 30.0
    """A rendered name held by an object Lanes does not manage: try again this much later."""

    def __post_init__(self) -> None:
        if self.workers < 1 or self.resync <= 0 or self.discovery_interval <= 0:
            raise ValueError("lane reconciler: workers >= 1, resync > 0 and discovery interval > 0 are required")
