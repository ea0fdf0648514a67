"""helper.record behaves as dataclasses in what the helper uses of it.

Each case declares the same class with ``dataclasses.dataclass`` and with ``helper.record.record`` and asserts the
behaviour named, on both: the expectations are dataclasses' documented behaviour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from helper import record as rec

KINDS = {
    "dataclasses": (dataclasses.dataclass, dataclasses.field),
    "record": (rec.record, rec.field),
}


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> tuple[Callable[..., Any], Callable[..., Any]]:
    return KINDS[request.param]


def _point(kind: tuple[Callable[..., Any], Callable[..., Any]], **options: Any) -> type:
    decorate, field = kind

    class Point:
        x: int
        y: int = 0
        tags: list[str] = field(default_factory=list)
        seen: int = field(default=0, init=False, repr=False)
        unit: str = field(default="m", kw_only=True)

        def norm(self) -> int:
            return abs(self.x) + abs(self.y)

    return decorate(**options)(Point)  # type: ignore[no-any-return]


def test_init_defaults_factories_and_keyword_only(kind: Any) -> None:
    point = _point(kind)
    a = point(1)
    b = point(1, 2, ["t"], unit="cm")
    assert (a.x, a.y, a.tags, a.seen, a.unit) == (1, 0, [], 0, "m")
    assert (b.x, b.y, b.tags, b.unit) == (1, 2, ["t"], "cm")
    assert a.tags is not point(1).tags, "a fresh list each time"
    assert a.norm() == 1
    with pytest.raises(TypeError):
        point()  # x is required
    with pytest.raises(TypeError):
        point(1, 2, [], "cm")  # unit is keyword-only
    with pytest.raises(TypeError):
        point(1, x=1)
    with pytest.raises(TypeError):
        point(1, seen=3)  # init=False


def test_repr_and_equality(kind: Any) -> None:
    point = _point(kind)
    assert repr(point(1, 2)).endswith("Point(x=1, y=2, tags=[], unit='m')")
    assert point(1, 2) == point(1, 2)
    assert point(1, 2) != point(2, 1)
    assert point(1) != (1, 0)
    with pytest.raises(TypeError):
        hash(point(1))  # eq without frozen: unhashable


def test_frozen_refuses_assignment_and_hashes_by_fields(kind: Any) -> None:
    point = _point(kind, frozen=True)
    p = point(1, 2)
    with pytest.raises(AttributeError):
        p.x = 5
    assert hash(point(1, 2, ("a",))) == hash(point(1, 2, ("a",)))
    assert len({point(1, 2, ()), point(1, 2, ()), point(3, 4, ())}) == 2
    with pytest.raises(TypeError):
        hash(point(1, 2, ["a"]))  # a list field: unhashable, as the tuple of fields is


def test_slots_leave_no_instance_dict(kind: Any) -> None:
    point = _point(kind, slots=True)
    p = point(1)
    assert not hasattr(p, "__dict__")
    assert set(point.__slots__) >= {"x", "y", "tags", "seen", "unit"}
    with pytest.raises(AttributeError):
        p.other = 1


def test_eq_false_compares_by_identity(kind: Any) -> None:
    point = _point(kind, eq=False)
    p = point(1)
    assert p != point(1) and p == p
    assert len({p, point(1)}) == 2


def test_post_init_runs_after_the_fields_are_set(kind: Any) -> None:
    decorate, _ = kind

    class Checked:
        low: int
        high: int

        def __post_init__(self) -> None:
            if self.low > self.high:
                raise ValueError("low > high")

    checked = decorate(frozen=True, slots=True)(Checked)
    assert checked(1, 2).high == 2
    with pytest.raises(ValueError, match="low > high"):
        checked(3, 2)


def test_as_dict_and_replace() -> None:
    point = _point(KINDS["record"], frozen=True)
    p = point(1, 2, ["a"])
    assert rec.as_dict(p) == {"x": 1, "y": 2, "tags": ["a"], "seen": 0, "unit": "m"}
    moved = rec.replace(p, y=5)
    assert (moved.x, moved.y, moved.tags) == (1, 5, ["a"]) and p.y == 2
