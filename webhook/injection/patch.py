"""JSON Patch (RFC 6902) ops that turn the admitted pod into the mutated one, emitted directly.

A general-purpose diff (``jsonpatch.make_patch``) compares every node of both documents and costs more than the
rest of the admission together. The mutation instead shares every subtree it does not change with its input
(copy-on-write), so this walk skips each subtree that is the very same object and only descends where the
mutation replaced an object: labels, annotations, ``initContainers``, each container's ``env`` and ``lifecycle``,
``readinessGates``, ``terminationGracePeriodSeconds``. The ops therefore name exactly the paths the mutation
touched; absent parents (no ``labels``, no ``initContainers``, no ``env``) are created by adding the whole new
value at the parent's path.

Lists are aligned, not compared position by position: items are matched in order by identity, by equal ``name``
(containers, env vars) or by equal value, so inserting env vars at the front is a few ``add`` ops at indices
rather than a rewrite of every element after them.
"""

from __future__ import annotations

from itertools import islice
from operator import is_
from typing import Any

Op = dict[str, Any]
_MISSING = object()


def escape(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901): ``~`` -> ``~0``, ``/`` -> ``~1``."""
    if "~" in token or "/" in token:
        return token.replace("~", "~0").replace("/", "~1")
    return token


def pointer(*tokens: str | int) -> str:
    """A JSON Pointer from unescaped tokens: ``pointer("metadata", "labels", "lanes.io/lane")``."""
    return "".join("/" + escape(str(token)) for token in tokens)


def make_ops(original: Any, mutated: Any) -> list[Op]:
    """The ops that turn ``original`` into ``mutated``, for a ``mutated`` that shares unchanged subtrees with
    ``original`` (as :func:`webhook.injection.mutation.mutate` returns). Correct for any pair of JSON documents, fast
    when they share structure."""
    ops: list[Op] = []
    _diff(original, mutated, "", ops)
    return ops


def _same_scalar(a: Any, b: Any) -> bool:
    # In Python True == 1 and 1 == 1.0; in JSON they are different values.
    return type(a) is type(b) and a == b


def _diff(old: Any, new: Any, path: str, ops: list[Op]) -> None:
    if old is new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        added = 0
        # One pass at comprehension speed finds the few keys whose value is not the very same object.
        for key in [key for key, value in new.items() if old.get(key, _MISSING) is not value]:
            value = new[key]
            if key in old:
                _diff(old[key], value, path + "/" + escape(str(key)), ops)
            else:
                added += 1
                ops.append({"op": "add", "path": path + "/" + escape(str(key)), "value": value})
        if len(old) + added != len(new):  # some keys of old are gone
            for key in old:
                if key not in new:
                    ops.append({"op": "remove", "path": path + "/" + escape(str(key))})
        return
    if isinstance(old, list) and isinstance(new, list):
        _diff_list(old, new, path, ops)
        return
    if not _same_scalar(old, new):
        ops.append({"op": "replace", "path": path, "value": new})


def _name(item: Any) -> Any:
    return item.get("name") if isinstance(item, dict) else None


def _matches(old: Any, new: Any) -> bool:
    """Whether ``new`` is (a version of) the item ``old``: same object, same ``name``, or the same value."""
    if old is new:
        return True
    old_name = _name(old)
    if old_name is not None:
        return isinstance(old_name, str) and old_name == _name(new)
    if isinstance(old, dict | list):
        return type(old) is type(new) and old == new
    return _same_scalar(old, new)


def _align(old: list[Any], new: list[Any]) -> list[int | None]:
    """For each item of ``new``, the index of its match in ``old`` or None when it is inserted. Matched indices
    increase, so removals, then inserts, then descents into matched items reproduce ``new`` exactly.

    Items the mutation did not touch are the very same objects and are matched by identity; only the others are
    compared (by name or value) with the few old items that do not reappear as themselves.
    """
    positions = {id(item): i for i, item in enumerate(old)}
    leftovers: list[int] | None = None
    result: list[int | None] = []
    cursor = 0
    for item in new:
        found = positions.get(id(item))
        if found is None or found < cursor or old[found] is not item:
            if leftovers is None:
                reappearing = {positions.get(id(x)) for x in new}
                leftovers = [i for i in range(len(old)) if i not in reappearing]
            found = next((i for i in leftovers if i >= cursor and _matches(old[i], item)), None)
        result.append(found)
        if found is not None:
            cursor = found + 1
    return result


def _fast_alignment(old: list[Any], new: list[Any]) -> tuple[int, list[int]] | None:
    """The common shapes, found at C speed: ``new`` is some inserted items, then ``old`` with a few items
    replaced in place (same name or value), then some appended items. Returns ``(prefix length, replaced
    indices)`` or None when ``new`` has another shape."""
    n = len(old)
    extra = len(new) - n
    if extra < 0 or n == 0:
        return None
    first, last = old[0], old[-1]
    likely = [p for p in range(extra + 1) if new[p] is first or new[p + n - 1] is last]
    for prefix in likely or range(extra + 1):
        same = list(map(is_, islice(new, prefix, prefix + n), old))
        changed = same.count(False)
        if changed > n // 2 + 1:
            continue
        replaced: list[int] = []
        start = 0
        for _ in range(changed):
            i = same.index(False, start)
            if not _matches(old[i], new[prefix + i]):
                break
            replaced.append(i)
            start = i + 1
        else:
            return prefix, replaced
    return None


def _diff_list(old: list[Any], new: list[Any], path: str, ops: list[Op]) -> None:
    fast = _fast_alignment(old, new)
    if fast is not None:
        prefix, replaced = fast
        for i in range(prefix):
            ops.append({"op": "add", "path": f"{path}/{i}", "value": new[i]})
        for i in range(prefix + len(old), len(new)):
            ops.append({"op": "add", "path": f"{path}/{i}", "value": new[i]})
        for i in replaced:
            _diff(old[i], new[prefix + i], f"{path}/{prefix + i}", ops)
        return
    alignment = _align(old, new)
    matched = {j for j in alignment if j is not None}
    if old and not matched:  # nothing in common: one op instead of removing and adding every item
        ops.append({"op": "replace", "path": path, "value": new})
        return
    # 1. remove old items without a match, from the back so earlier indices stay valid;
    for k in range(len(old) - 1, -1, -1):
        if k not in matched:
            ops.append({"op": "remove", "path": f"{path}/{k}"})
    # 2. insert new items in increasing index order: before inserting at i, the list already equals new[:i];
    for i, j in enumerate(alignment):
        if j is None:
            ops.append({"op": "add", "path": f"{path}/{i}", "value": new[i]})
    # 3. now matched items sit at their final index: descend into the ones that changed.
    for i, j in enumerate(alignment):
        if j is not None and old[j] is not new[i]:
            _diff(old[j], new[i], f"{path}/{i}", ops)
