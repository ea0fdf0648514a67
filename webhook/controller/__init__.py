"""The Lanes controller: readiness gate, certificates and repair, one leader among the webhook replicas.

Entry points: :class:`Controller` / :func:`run_controller` (webhook.controller.run) inside another process,
``python -m webhook.controller`` standalone. docs/controller.md describes each loop, its RBAC and its metrics.
"""

from webhook.controller.metrics import ControllerMetrics
from webhook.controller.run import Controller, run_controller, start_controller
from webhook.controller.settings import (
    CertTiming,
    ControllerSettings,
    LeaseTiming,
    RepairMode,
    RepairSettings,
)

__all__ = [
    "CertTiming",
    "Controller",
    "ControllerMetrics",
    "ControllerSettings",
    "LeaseTiming",
    "RepairMode",
    "RepairSettings",
    "run_controller",
    "start_controller",
]
