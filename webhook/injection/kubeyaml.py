"""YAML read and written the way kubectl reads it, for ``lanes inject``.

kubectl converts manifests to JSON with sigs.k8s.io/yaml, which is go-yaml v2: a YAML 1.1-ish resolver that is
neither PyYAML's (YAML 1.1) nor YAML 1.2's. Plain ``y``/``n`` are booleans, ``5e3`` and ``1_000`` are numbers,
``0o17`` and ``010`` are octal, ``0x1F`` hex, but ``1:20`` (sexagesimal) and dates stay strings. PyYAML quotes only
what *its* resolver would misread, so ``answer: "n"`` used to come out as ``answer: n``, which kubectl reads as
``false``; and it read ``limit: 5e3`` as the string "5e3" where kubectl reads 5000.

So both directions use :func:`go_yaml_tag`, a transcription of go-yaml v2's ``resolve()``
(go.yaml.in/yaml/v2 v2.4.4 resolve.go, the version kubectl v1.37 links):

* :func:`load_stream` resolves plain scalars as kubectl does, so the objects hold what kubectl would send; it
  rejects duplicate mapping keys (kubectl does too) naming the line of both.
* :func:`dump_stream` quotes every string that go-yaml, PyYAML (YAML 1.1) or a YAML 1.2 core-schema reader could
  take for anything but a string, plus ``y``/``n``/``yes``/``no``/``on``/``off``/``true``/``false``/``null`` in any
  case, so the output means the same to every common reader. Everything else stays plain, and multi-line strings
  become literal blocks (``|``), so the output stays readable.

The tests prove the round trip with kubectl's own reader (hack/yamlcheck, built by devtools/yamlcheck.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

STR = "tag:yaml.org,2002:str"
BOOL = "tag:yaml.org,2002:bool"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
NULL = "tag:yaml.org,2002:null"
MERGE = "tag:yaml.org,2002:merge"
TIMESTAMP = "tag:yaml.org,2002:timestamp"
#: Tag the dumper's resolver gives a string no reader may see plain: it forces quotes, and is never emitted.
_AMBIGUOUS = "tag:lanes.io,2026:ambiguous"

# --- go-yaml v2's resolver ----------------------------------------------------------------------------------------

_GO_MAP: dict[str, tuple[str, Any]] = {}
for _words, _tag, _value in (
    (("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), BOOL, True),
    (("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), BOOL, False),
    (("", "~", "null", "Null", "NULL"), NULL, None),
    ((".nan", ".NaN", ".NAN"), FLOAT, math.nan),
    ((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), FLOAT, math.inf),
    (("-.inf", "-.Inf", "-.INF"), FLOAT, -math.inf),
    (("<<",), MERGE, "<<"),
):
    for _word in _words:
        _GO_MAP[_word] = (_tag, _value)

_GO_HINT_LETTERS = frozenset("yYnNtTfFoO~")
_YAML_STYLE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")  # what Go's ParseFloat takes after a leading "."
_GO_INT = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_GO_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(([Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]{1,9})?(Z|[-+][0-9]{2}:[0-9]{2}))"
    r"|( [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]{1,9})?))?"
)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), falling back to ParseUint (no sign allowed): None when neither parses."""
    match = _GO_INT.fullmatch(text)
    if match is None:
        return None
    sign, body = match.groups()
    if body[:2] in ("0x", "0X"):
        value = int(body[2:], 16)
    elif body[:2] in ("0o", "0O"):
        value = int(body[2:], 8)
    elif body[:2] in ("0b", "0B"):
        value = int(body[2:], 2)
    elif body.startswith("0") and len(body) > 1:
        value = int(body[1:], 8)
    else:
        value = int(body)
    value = -value if sign == "-" else value
    if _INT64[0] <= value <= _INT64[1]:
        return value
    if not sign and value <= _UINT64_MAX:
        return value
    return None


def _go_float(text: str) -> float | None:
    """strconv.ParseFloat of a decimal literal: None on a range error (Go rejects 1e400; Python says inf)."""
    value = float(text)
    return None if math.isinf(value) else value


def go_yaml_scalar(text: str) -> tuple[str, Any]:
    """The tag and value go-yaml v2 (so kubectl) gives the plain scalar ``text``. Timestamps get TIMESTAMP with the
    text itself: decoded into ``interface{}`` (as kubectl does), go-yaml keeps them as strings."""
    if text in _GO_MAP:
        return _GO_MAP[text]
    first = text[0]
    if first in _GO_HINT_LETTERS:
        return STR, text
    if first == ".":
        if _DOT_FLOAT.fullmatch(text):
            value = _go_float(text)
            if value is not None:
                return FLOAT, value
        return STR, text
    if first in "+-" or first.isdigit():
        if _GO_TIMESTAMP.fullmatch(text):
            return TIMESTAMP, text
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return INT, number
        if _YAML_STYLE_FLOAT.fullmatch(plain):
            value = _go_float(plain)
            if value is not None:
                return FLOAT, value
    return STR, text


def go_yaml_tag(text: str) -> str:
    return go_yaml_scalar(text)[0]


# --- what other readers would misread ------------------------------------------------------------------------------

_YAML11 = yaml.resolver.Resolver()
_YAML12_CORE = re.compile(
    r"null|Null|NULL|~|true|True|TRUE|false|False|FALSE"
    r"|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN"
)
_ANY_CASE_WORDS = re.compile(r"(?i:y|n|yes|no|on|off|true|false|null|~|[-+]?\.?(inf|nan|infinity))")


def ambiguous(text: str) -> bool:
    """Whether a plain ``text`` could be read as anything but a string by go-yaml (kubectl), PyYAML (YAML 1.1), a
    YAML 1.2 core-schema reader, or a case-insensitive one."""
    return (
        text == ""
        or go_yaml_tag(text) != STR
        or _YAML11.resolve(ScalarNode, text, (True, False)) != STR
        or _YAML12_CORE.fullmatch(text) is not None
        or _ANY_CASE_WORDS.fullmatch(text) is not None
    )


# --- loading -------------------------------------------------------------------------------------------------------


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping names the same key twice (kubectl rejects it; which value would win is undefined)."""


class _GoResolver(yaml.resolver.BaseResolver):
    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0]:
            return go_yaml_tag(value)
        return super().resolve(kind, value, implicit)


class _Constructor(yaml.constructor.SafeConstructor):
    """SafeConstructor with go-yaml's values for the scalars its resolver finds, and duplicate-key detection."""

    def _scalar(self, node: Node, wanted: str) -> Any:
        text = self.construct_scalar(node)  # type: ignore[arg-type]
        scalar: tuple[str, Any] = go_yaml_scalar(text) if text else (NULL, None)
        tag, value = scalar
        if wanted == FLOAT and tag == INT:
            return float(value)
        if tag != wanted:
            short = wanted.rsplit(":", 1)[-1]
            raise ConstructorError(None, None, f"cannot decode {text!r} as a !!{short}", node.start_mark)
        return value

    def construct_go_bool(self, node: Node) -> Any:
        return self._scalar(node, BOOL)

    def construct_go_int(self, node: Node) -> Any:
        return self._scalar(node, INT)

    def construct_go_float(self, node: Node) -> Any:
        return self._scalar(node, FLOAT)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: SafeConstructor reports it
                break
            if first is not None:
                raise DuplicateKeyError(
                    "while constructing a mapping",
                    first.start_mark,
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_Constructor.add_constructor(BOOL, _Constructor.construct_go_bool)  # type: ignore[type-var]
_Constructor.add_constructor(INT, _Constructor.construct_go_int)  # type: ignore[type-var]
_Constructor.add_constructor(FLOAT, _Constructor.construct_go_float)  # type: ignore[type-var]
_Constructor.add_constructor(TIMESTAMP, yaml.constructor.SafeConstructor.construct_yaml_str)  # type: ignore[type-var]


class KubeLoader(
    yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer, _Constructor, _GoResolver
):
    """A safe loader that resolves plain scalars like kubectl (go-yaml v2) and rejects duplicate keys."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Constructor.__init__(self)
        _GoResolver.__init__(self)


def load_stream(text: str) -> Iterator[Any]:
    """Each document of ``text`` (None for an empty one), as kubectl would read it; raises yaml.YAMLError."""
    loader = KubeLoader(text)
    try:
        while loader.check_data():
            yield loader.get_data()
    finally:
        loader.dispose()


# --- dumping -------------------------------------------------------------------------------------------------------


class _QuotingResolver(yaml.resolver.BaseResolver):
    """Plain scalars resolve as go-yaml does; strings any common reader could misread resolve to a tag no string
    has, so the serializer must quote them."""

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0]:
            tag = go_yaml_tag(value)
            if tag == STR and ambiguous(value):
                return _AMBIGUOUS
            return tag
        return super().resolve(kind, value, implicit)


class _Representer(yaml.representer.SafeRepresenter):
    def represent_str(self, data: str) -> ScalarNode:
        # Literal blocks for multi-line text (config files in ConfigMaps); the emitter falls back to quotes when
        # the text cannot be a block (e.g. control characters, trailing spaces before a newline).
        style = "|" if "\n" in data.rstrip("\n") or (data.endswith("\n") and len(data) > 1) else None
        return self.represent_scalar(STR, data, style=style)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &id001 anchors even where the mutation shares unchanged subtrees


_Representer.add_representer(str, _Representer.represent_str)


class KubeDumper(
    yaml.emitter.Emitter, yaml.serializer.Serializer, _Representer, _QuotingResolver
):
    """A safe dumper whose output means the same to kubectl, PyYAML and YAML 1.2 readers as the objects."""

    def __init__(self, stream: Any, **kwargs: Any) -> None:
        yaml.emitter.Emitter.__init__(
            self,
            stream,
            canonical=kwargs.get("canonical"),
            indent=kwargs.get("indent"),
            width=kwargs.get("width"),
            allow_unicode=kwargs.get("allow_unicode"),
            line_break=kwargs.get("line_break"),
        )
        yaml.serializer.Serializer.__init__(
            self,
            encoding=kwargs.get("encoding"),
            explicit_start=kwargs.get("explicit_start"),
            explicit_end=kwargs.get("explicit_end"),
            version=kwargs.get("version"),
            tags=kwargs.get("tags"),
        )
        _Representer.__init__(
            self,
            default_style=kwargs.get("default_style"),
            default_flow_style=kwargs.get("default_flow_style", False),
            sort_keys=kwargs.get("sort_keys", True),
        )
        _QuotingResolver.__init__(self)


def dump_stream(documents: list[Any]) -> str:
    """YAML text of ``documents``, separated by ``---``, keys in their original order, long lines unfolded."""
    if not documents:
        return ""
    text: str = yaml.dump_all(
        documents,
        Dumper=KubeDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
        explicit_start=len(documents) > 1,
    )
    return text
