"""``@record``: the part of ``@dataclass`` the helper uses, without importing ``dataclasses``.

The helper runs in every pod, and ``import dataclasses`` costs 1.3 MiB of resident memory there (it imports
``inspect``, which imports ``ast``, ``dis``, ``tokenize`` and ``linecache``), and each decorated class compiles
generated methods on top. ``@record`` builds the same things from the class's annotations, with no code generation:

- ``__init__`` taking the fields in order, positionally or by keyword, with defaults and
  ``field(default_factory=...)``; ``field(init=False)`` fields get their default only; ``__post_init__`` runs last;
- ``__repr__`` (fields with ``repr=True``) and ``__eq__`` (same class, equal fields) unless ``eq=False``;
- ``frozen=True``: assignment raises ``AttributeError``, and instances hash by their fields (unfrozen records with
  ``eq`` are unhashable, ``eq=False`` ones hash by identity, as dataclasses do);
- ``slots=True``: the class is rebuilt with ``__slots__`` for its fields.

For the type checker, ``record`` is declared a dataclass transform (PEP 681), so mypy checks constructor calls as
it checks dataclasses. :func:`as_dict` replaces ``dataclasses.asdict`` (not recursive: the helper's records hold
plain values) and :func:`replace` ``dataclasses.replace``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    _C = TypeVar("_C", bound=type)
else:

    def dataclass_transform(**_: object) -> object:
        return lambda function: function


_MISSING: Any = object()
FIELDS = "__record_fields__"


class Field:
    """What ``field(...)`` declares for one attribute."""

    __slots__ = ("default", "factory", "init", "kw_only", "name", "repr")

    def __init__(
        self, default: Any, factory: Callable[[], Any] | None, init: bool, repr: bool, kw_only: bool
    ) -> None:
        self.name = ""
        self.default = default
        self.factory = factory
        self.init = init
        self.repr = repr
        self.kw_only = kw_only


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    init: bool = True,
    repr: bool = True,
    kw_only: bool = False,
) -> Any:
    return Field(default, default_factory, init, repr, kw_only)


def _fields_of(cls: type) -> list[Field]:
    inherited: list[Field] = list(getattr(cls, FIELDS, ()))
    own: list[Field] = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063 - inspect is 1 MiB
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, _MISSING)
        spec = value if isinstance(value, Field) else Field(value, None, True, True, False)
        spec.name = name
        own.append(spec)
    names = {spec.name for spec in own}
    return [spec for spec in inherited if spec.name not in names] + own


def _rebuild_with_slots(cls: type, fields: list[Field]) -> type:
    inherited = {spec.name for spec in getattr(cls, FIELDS, ())}
    namespace = {
        key: value
        for key, value in cls.__dict__.items()
        if key not in ("__dict__", "__weakref__") and key not in {spec.name for spec in fields}
    }
    namespace["__slots__"] = tuple(spec.name for spec in fields if spec.name not in inherited)
    return type(cls)(cls.__name__, cls.__bases__, namespace)


def _make_init(fields: list[Field]) -> Callable[..., None]:
    names = [spec.name for spec in fields if spec.init and not spec.kw_only]  # the positional ones
    keywords = {spec.name for spec in fields if spec.init}
    setter = object.__setattr__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes {len(names)} arguments, {len(args)} given")
        given = dict(zip(names, args, strict=False))
        for name in kwargs:
            if name not in keywords:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
            if name in given:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
        given.update(kwargs)
        for spec in fields:
            if spec.init and spec.name in given:
                value = given[spec.name]
            elif spec.factory is not None:
                value = spec.factory()
            elif spec.default is not _MISSING:
                value = spec.default
            elif spec.init:
                raise TypeError(f"{type(self).__name__}() missing required argument: {spec.name!r}")
            else:
                continue
            setter(self, spec.name, value)
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    return __init__


@dataclass_transform(field_specifiers=(field, Field))
def record(
    cls: _C | None = None, /, *, frozen: bool = False, slots: bool = False, eq: bool = True
) -> Any:
    """Decorate a class with annotated fields, as ``@dataclass`` (see the module docstring for what is kept)."""

    def build(cls: _C) -> _C:
        fields = _fields_of(cls)
        if slots:
            cls = _rebuild_with_slots(cls, fields)  # type: ignore[assignment]
        else:
            for spec in fields:  # the class attribute stays as the default, as with dataclasses
                if isinstance(cls.__dict__.get(spec.name), Field):
                    if spec.default is _MISSING:
                        delattr(cls, spec.name)
                    else:
                        setattr(cls, spec.name, spec.default)
        setattr(cls, FIELDS, tuple(fields))
        cls.__init__ = _make_init(fields)  # type: ignore[misc]
        shown = tuple(spec.name for spec in fields if spec.repr)
        compared = tuple(spec.name for spec in fields)

        def __repr__(self: Any) -> str:
            inner = ", ".join(f"{name}={getattr(self, name, '<unset>')!r}" for name in shown)
            return f"{type(self).__qualname__}({inner})"

        cls.__repr__ = __repr__  # type: ignore[assignment]
        if eq:

            def __eq__(self: Any, other: object) -> bool:
                if other.__class__ is not self.__class__:
                    return NotImplemented
                return all(getattr(self, name) == getattr(other, name) for name in compared)

            cls.__eq__ = __eq__  # type: ignore[assignment]
            if frozen:

                def __hash__(self: Any) -> int:
                    return hash(tuple(getattr(self, name) for name in compared))

                cls.__hash__ = __hash__  # type: ignore[assignment]
            else:
                cls.__hash__ = None  # type: ignore[assignment]
        if frozen:

            def __setattr__(self: Any, name: str, value: Any) -> None:
                raise AttributeError(f"cannot assign to field {name!r} of frozen {type(self).__name__}")

            def __delattr__(self: Any, name: str) -> None:
                raise AttributeError(f"cannot delete field {name!r} of frozen {type(self).__name__}")

            cls.__setattr__ = __setattr__  # type: ignore[assignment]
            cls.__delattr__ = __delattr__  # type: ignore[assignment]
        return cls

    return build if cls is None else build(cls)


def as_dict(instance: Any) -> dict[str, Any]:
    """The fields and their values, in declaration order (``dataclasses.asdict`` for flat records)."""
    return {spec.name: getattr(instance, spec.name) for spec in getattr(type(instance), FIELDS)}


def replace(instance: Any, **changes: Any) -> Any:
    """A copy with ``changes`` (``dataclasses.replace``)."""
    values = {spec.name: getattr(instance, spec.name) for spec in getattr(type(instance), FIELDS) if spec.init}
    values.update(changes)
    return type(instance)(**values)
