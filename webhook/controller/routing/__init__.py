"""Lane routing: the ``Lane`` resource turned into data-plane objects (DESIGN.md, "Lane routing").

spec (a Lane read and validated) -> inventory (what a namespace has) -> render (pure: objects, statuses,
events) -> reconciler (applies them, on the shared Kubernetes access layer). ``lanes route`` runs the same
render offline.
"""

from webhook.controller.routing.inventory import Inventory, build_inventory, ready_counts
from webhook.controller.routing.render import RenderOptions, RenderResult, render, render_lane
from webhook.controller.routing.spec import Lane, LaneError, parse_lane

__all__ = [
    "Inventory",
    "Lane",
    "LaneError",
    "RenderOptions",
    "RenderResult",
    "build_inventory",
    "parse_lane",
    "ready_counts",
    "render",
    "render_lane",
]
