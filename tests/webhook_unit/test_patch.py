"""JSON Patch ops emitted directly: correct for any pair of documents, minimal where the mutation shares
structure. jsonpatch (a real RFC 6902 implementation) is the judge."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.injection.patch import escape, make_ops, pointer


def apply(doc: Any, ops: list[dict[str, Any]]) -> Any:
    return jsonpatch.apply_patch(copy.deepcopy(doc), ops)


def test_escape_per_rfc_6901() -> None:
    assert escape("lanes.io/lane") == "lanes.io~1lane"
    assert escape("a~b") == "a~0b"
    assert escape("~/") == "~0~1"
    assert pointer("metadata", "annotations", "lanes.io/status") == "/metadata/annotations/lanes.io~1status"
    assert pointer("spec", "containers", 0, "env") == "/spec/containers/0/env"


def test_identical_documents_need_no_ops() -> None:
    doc = {"a": [1, {"b": 2}]}
    assert make_ops(doc, doc) == []
    assert make_ops(doc, copy.deepcopy(doc)) == []


def test_absent_parents_are_created_by_adding_the_whole_value() -> None:
    old: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"lanes.io/lane": "gray"}
    new["spec"]["initContainers"] = [{"name": "lanes-agent"}]
    new["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
    ops = make_ops(old, new)
    assert {"op": "add", "path": "/metadata/labels", "value": {"lanes.io/lane": "gray"}} in ops
    assert {"op": "add", "path": "/spec/initContainers", "value": [{"name": "lanes-agent"}]} in ops
    assert {"op": "add", "path": "/spec/containers/0/env", "value": [{"name": "X", "value": "1"}]} in ops
    assert apply(old, ops) == new


def test_shared_subtrees_are_skipped_and_prepends_are_index_inserts() -> None:
    user_env = [{"name": f"V{i}", "value": str(i)} for i in range(30)]
    old = {"spec": {"containers": [{"name": "a", "env": user_env, "big": {"x": list(range(100))}}]}}
    container = dict(old["spec"]["containers"][0])
    container["env"] = [{"name": "LANES_LANE", "value": "gray"}, *user_env]
    new = {"spec": {"containers": [container]}}
    ops = make_ops(old, new)
    assert ops == [{"op": "add", "path": "/spec/containers/0/env/0", "value": {"name": "LANES_LANE", "value": "gray"}}]
    assert apply(old, ops) == new


def test_json_types_are_not_confused() -> None:
    assert make_ops({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]
    assert make_ops({"a": 1}, {"a": 1.0}) == [{"op": "replace", "path": "/a", "value": 1.0}]
    assert apply({"a": [1, 0]}, make_ops({"a": [1, 0]}, {"a": [True, False]})) == {"a": [True, False]}


def test_removals_and_reorders() -> None:
    old = {"l": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "gone": 1}
    new = {"l": [{"name": "c"}, {"name": "a", "x": 1}]}
    assert apply(old, make_ops(old, new)) == new


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(["", "a", "b", "x/y", "~0", "name"]),
)
keys = st.sampled_from(["a", "b", "name", "x/y", "~k", "lanes.io/lane", ""])
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(keys, inner, max_size=5),
        st.lists(st.fixed_dictionaries({"name": st.sampled_from(["a", "b", "c", "d"])}, optional={"v": inner}),
                 max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_any_pair_of_documents(old: Any, new: Any) -> None:
    assert apply({"root": old}, make_ops({"root": old}, {"root": new})) == {"root": new}


def _edit(draw: Any, value: Any, depth: int = 0) -> Any:
    """A copy-on-write edit of ``value``, the way the mutation edits pods: untouched parts stay shared."""
    choice = draw(st.integers(0, 4))
    if isinstance(value, dict) and value and choice < 3:
        key = draw(st.sampled_from(sorted(value)))
        out = dict(value)
        if choice == 0:
            del out[key]
        else:
            out[key] = _edit(draw, value[key], depth + 1)
        if draw(st.booleans()):
            out[draw(keys)] = draw(json_values)
        return out
    if isinstance(value, list) and choice < 3:
        out_list = list(value)
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(out_list)))
            out_list.insert(at, draw(json_values))
        if out_list and draw(st.booleans()):
            at = draw(st.integers(0, len(out_list) - 1))
            out_list[at] = _edit(draw, out_list[at], depth + 1)
        if out_list and draw(st.booleans()):
            del out_list[draw(st.integers(0, len(out_list) - 1))]
        return out_list
    return draw(json_values) if choice == 4 else value


@settings(max_examples=200, deadline=None)
@given(st.data(), json_values)
def test_copy_on_write_edits(data: st.DataObject, old: Any) -> None:
    new = _edit(data.draw, old)
    assert apply({"root": old}, make_ops({"root": old}, {"root": new})) == {"root": new}
