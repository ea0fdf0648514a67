"""Whether a live object already is what was rendered: the check that keeps the reconciler from writing (and
from looping on its own watch events) when nothing changed.

The live object is what the API server made of an earlier apply: the rendered fields plus server-set ones
(``clusterIP``, ``ipFamilies``, CRD defaults, ``status``, ``managedFields``). So the test is containment, not
equality: every rendered field is present with the same value. Lists are compared item by item and must have
the same length (a rule removed is a change), except ``ownerReferences``, where other owners may have added
theirs: there, the set of Lane owners must be exactly the rendered one (a Lane that no longer owns an object
must disappear from it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.controller.routing import names


def contains(live: Any, desired: Any) -> bool:
    """``live`` has every field of ``desired`` with an equal value (recursively)."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(key in live and contains(live[key], value) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(contains(a, b) for a, b in zip(live, desired, strict=True))
    if isinstance(desired, bool) or isinstance(live, bool):
        return live is desired
    return bool(live == desired)


def _lane_owners(meta: Mapping[str, Any]) -> set[str]:
    return {
        str(ref.get("uid"))
        for ref in meta.get("ownerReferences") or ()
        if isinstance(ref, Mapping) and ref.get("kind") == names.KIND and ref.get("apiVersion") == names.API_VERSION
    }


def up_to_date(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """True when applying ``desired`` would change nothing that Lanes manages in ``live``."""
    if live is None:
        return False
    live_meta = live.get("metadata") or {}
    desired_meta = desired.get("metadata") or {}
    if _lane_owners(live_meta) != _lane_owners(desired_meta):
        return False
    for key in ("labels", "annotations"):
        if not contains(live_meta.get(key) or {}, desired_meta.get(key) or {}):
            return False
    for key, value in desired.items():
        if key in ("metadata", "apiVersion", "kind"):
            continue
        if key not in live or not contains(live[key], value):
            return False
    return True
