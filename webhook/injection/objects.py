"""Reading untrusted Kubernetes objects: a pod inside an AdmissionReview, or a manifest, may have any shape.

Every reader in this package walks ``metadata``, ``spec`` and ``containers`` through these two, so a field of the
wrong type reads as empty (and is reported where it matters) instead of raising in the admission path.
"""

from __future__ import annotations

from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []
