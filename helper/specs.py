"""Parsers for the small spec languages users write in annotations and the helper reads from env vars.

The webhook imports these to validate annotations, so an annotation is checked by exactly the parser that will read
it in the pod. Every parser raises :class:`SpecError` whose message quotes the bad input, says what is wrong and
shows a good example, in at most 100 characters: the webhook forwards it verbatim as an admission warning, which
``kubectl`` prints on one line.

Formats (docs/architecture.md):

- warm-up curve: ``linear`` | ``k=<float>`` | ``aggression=<float>``, optional ``,min=<percent>``;
- warm-up requests: comma list of ``[METHOD] PATH [xCOUNT] [cCONCURRENCY]``;
- prewarm targets: comma list of ``tcp://host:port``, ``dns://host``, ``http(s)://host[:port]/path[#status]``;
- offline-notify URLs: comma list of ``http(s)://host[:port]/path``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from helper.record import record
from helper.warmup import DEFAULT_MIN_FRACTION, Curve

MAX_MESSAGE = 100
"""Longest error message; the admission warning budget is 120 and the webhook may prefix the annotation name."""

MAX_WARMUP_COUNT = 10_000
MAX_WARMUP_CONCURRENCY = 64
MAX_PATH = 2048
MAX_EXPONENT = 100.0

CURVE_EXAMPLE = "linear, k=2,min=5% or aggression=1.5"
REQUESTS_EXAMPLE = "'GET /api/items x50 c4'"
TARGET_EXAMPLE = "tcp://db:5432 or https://h/health#200"
URL_EXAMPLE = "http://host:8080/path"


class SpecError(ValueError):
    """A spec that does not parse. ``str(error)`` is short enough to be an admission warning as is."""


def _quote(value: str, room: int) -> str:
    """``value`` in quotes, escaped, cut to ``room`` characters so one bad value cannot blow the budget."""
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in value)
    if len(text) > room:
        text = text[: max(room - 3, 1)] + "..."
    return f"'{text}'"


def _error(what: str, value: str, reason: str, example: str) -> SpecError:
    """``bad <what> '<value>': <reason>; e.g. <example>`` in at most MAX_MESSAGE characters.

    The bad value matters most, then the reason, then the example: a long value is cut (to no less than 24
    characters) before the example is dropped.
    """
    head = f"bad {what} "
    tail = f": {reason}; e.g. {example}" if reason else f": e.g. {example}"
    shown = _quote(value, 10_000)
    room = MAX_MESSAGE - len(head) - len(tail) - 2
    if len(shown) - 2 > room and room < 24:  # keep the value readable, drop the example
        tail = f": {reason}"
        room = MAX_MESSAGE - len(head) - len(tail) - 2
    return SpecError((head + _quote(value, max(room, 10)) + tail)[:MAX_MESSAGE])


def _require_text(spec: object, what: str, example: str) -> str:
    """Annotations are strings, but the webhook may hand over whatever a user put in JSON: fail cleanly."""
    if not isinstance(spec, str):
        raise _error(what, repr(spec), "not a string", example)
    return spec


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, TypeVar

    T = TypeVar("T")


def _split_list(spec: str, what: str, example: str, parse_one: Callable[[str], T]) -> tuple[T, ...]:
    """Parse a comma list; blank items (a trailing comma) are ignored, an empty list is an error."""
    spec = _require_text(spec, what, example)
    items = [item.strip() for item in spec.split(",")]
    parsed = tuple(parse_one(item) for item in items if item)
    if not parsed:
        raise _error(what, spec, "empty", example)
    return parsed


# --- warm-up curve -------------------------------------------------------------------------------------------


def _number(text: str, what: str, spec: str, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _error(what, spec, f"{_quote(text, 12)} is not a number", example) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _error(what, spec, "not a finite number", example)
    return value


def parse_curve(spec: str) -> Curve:
    """``linear`` | ``k=<float>`` | ``aggression=<float>``, optionally followed by ``,min=<percent>``."""
    what = "warm-up curve"
    spec = _require_text(spec, what, CURVE_EXAMPLE)
    if not spec.strip():
        raise _error(what, spec, "empty", CURVE_EXAMPLE)
    k: float | None = None
    floor = DEFAULT_MIN_FRACTION
    seen: set[str] = set()
    for raw_part in spec.split(","):
        part = raw_part.strip().lower()
        key, sep, value = part.partition("=")
        key = key.strip()
        value = value.strip()
        if key in seen or (key in ("linear", "k", "aggression") and k is not None):
            raise _error(what, spec, f"{key or 'shape'} given twice", CURVE_EXAMPLE)
        seen.add(key)
        if key == "linear" and not sep:
            k = 1.0
        elif key == "k" and sep:
            k = _number(value, what, spec, CURVE_EXAMPLE)
            if not 0 < k <= MAX_EXPONENT:
                raise _error(what, spec, f"k must be in (0, {MAX_EXPONENT:g}]", CURVE_EXAMPLE)
        elif key == "aggression" and sep:
            aggression = _number(value, what, spec, CURVE_EXAMPLE)
            if not 1 / MAX_EXPONENT <= aggression <= MAX_EXPONENT:
                raise _error(what, spec, "aggression must be in [0.01, 100]", CURVE_EXAMPLE)
            k = 1.0 / aggression
        elif key == "min" and sep:
            percent = _number(value.removesuffix("%").strip(), what, spec, CURVE_EXAMPLE)
            if not 0 <= percent <= 100:
                raise _error(what, spec, "min must be 0%..100%", CURVE_EXAMPLE)
            floor = percent / 100.0
        else:
            raise _error(what, spec, f"unknown part {_quote(raw_part.strip(), 12)}", CURVE_EXAMPLE)
    if k is None:
        raise _error(what, spec, "no shape (linear, k= or aggression=)", CURVE_EXAMPLE)
    return Curve(k=k, min_fraction=floor)


# --- warm-up requests ----------------------------------------------------------------------------------------

_METHOD = re.compile(r"[A-Za-z]{1,16}")
_PATH = re.compile(r"/[\x21-\x7e]*")
_OPTION = re.compile(r"([xc])(\d{1,6})")


@record(frozen=True, slots=True)
class WarmupRequest:
    """One line of the self warm-up: send ``count`` requests ``method path`` with ``concurrency`` in flight."""

    method: str
    path: str
    count: int = 1
    concurrency: int = 1

    def __str__(self) -> str:
        return f"{self.method} {self.path} x{self.count} c{self.concurrency}"


def parse_warmup_request(spec: str) -> WarmupRequest:
    """``[METHOD] PATH [xCOUNT] [cCONCURRENCY]``, e.g. ``GET /api/items x50 c4`` or ``/healthz``."""
    what = "warm-up request"
    tokens = _require_text(spec, what, REQUESTS_EXAMPLE).split()
    if not tokens:
        raise _error(what, spec, "empty", REQUESTS_EXAMPLE)
    method = "GET"
    if not tokens[0].startswith("/"):
        if not _METHOD.fullmatch(tokens[0]):
            raise _error(what, spec, "path must start with /", REQUESTS_EXAMPLE)
        method = tokens.pop(0).upper()
    if not tokens or not tokens[0].startswith("/"):
        raise _error(what, spec, "missing path", REQUESTS_EXAMPLE)
    path = tokens.pop(0)
    if len(path) > MAX_PATH or not _PATH.fullmatch(path):
        raise _error(what, spec, "path has invalid characters", REQUESTS_EXAMPLE)
    options: dict[str, int] = {}
    for token in tokens:
        match = _OPTION.fullmatch(token.lower())
        if not match:
            raise _error(what, spec, f"unknown option {_quote(token, 12)}", REQUESTS_EXAMPLE)
        letter, number = match.group(1), int(match.group(2))
        if letter in options:
            raise _error(what, spec, f"{letter}N given twice", REQUESTS_EXAMPLE)
        options[letter] = number
    count = options.get("x", 1)
    concurrency = options.get("c", 1)
    if not 1 <= count <= MAX_WARMUP_COUNT:
        raise _error(what, spec, f"count must be 1..{MAX_WARMUP_COUNT}", REQUESTS_EXAMPLE)
    if not 1 <= concurrency <= MAX_WARMUP_CONCURRENCY:
        raise _error(what, spec, f"concurrency must be 1..{MAX_WARMUP_CONCURRENCY}", REQUESTS_EXAMPLE)
    return WarmupRequest(method=method, path=path, count=count, concurrency=concurrency)


def parse_warmup_requests(spec: str) -> tuple[WarmupRequest, ...]:
    """Comma list of warm-up requests, e.g. ``GET /api/items x50 c4, /healthz x5``."""
    return _split_list(spec, "warm-up requests", REQUESTS_EXAMPLE, parse_warmup_request)


# --- URLs and prewarm targets --------------------------------------------------------------------------------

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_PORT = re.compile(r"\d{1,5}")
_STATUS = re.compile(r"[1-5]\d\d")
_URL_REST = re.compile(r"[\x21-\x7e]*")

DEFAULT_PORTS = {"http": 80, "https": 443}


@record(frozen=True, slots=True)
class HttpUrl:
    """An ``http(s)`` URL reduced to what an HTTP/1.1 client needs."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    path: str
    """Origin-form request target: path plus query, always starting with ``/``."""

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.path}"


@record(frozen=True, slots=True)
class Target:
    """A dependency the prewarm init container checks: resolve, connect, optionally TLS and GET."""

    raw: str
    kind: Literal["tcp", "dns", "http", "https"]
    host: str
    port: int | None = None
    url: HttpUrl | None = None
    expect_status: int | None = None
    """Exact HTTP status required; ``None`` accepts any status below 500."""

    def __str__(self) -> str:
        return self.raw


def _host_port(authority: str, fail: Callable[[str], SpecError]) -> tuple[str, int | None]:
    """Split ``host[:port]`` / ``[v6][:port]`` and validate both halves."""
    if "@" in authority:
        raise fail("credentials are not allowed")
    port_text: str | None = None
    if authority.startswith("["):
        host, bracket, rest = authority[1:].partition("]")
        if not bracket:
            raise fail("unclosed [ in IPv6 address")
        import ipaddress  # only bracketed hosts need it

        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise fail("invalid IPv6 address") from None
        if rest:
            if not rest.startswith(":"):
                raise fail("junk after IPv6 address")
            port_text = rest[1:]
    else:
        host, colon, port_part = authority.partition(":")
        if colon:
            port_text = port_part
        if not host:
            raise fail("missing host")
        if not _HOSTNAME.fullmatch(host):
            raise fail("invalid host name")
    if port_text is None:
        return host, None
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise fail("port must be 1..65535")
    return host, int(port_text)


def _parse_url(spec: str, what: str, example: str, allow_status: bool) -> tuple[HttpUrl, int | None]:
    def fail(reason: str) -> SpecError:
        return _error(what, spec, reason, example)

    scheme, sep, rest = spec.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise fail("scheme must be http or https")
    if not _URL_REST.fullmatch(rest):
        raise fail("spaces or control characters")
    rest, hash_sign, fragment = rest.partition("#")
    status: int | None = None
    if hash_sign:
        if not allow_status:
            raise fail("no #fragment allowed")
        if not _STATUS.fullmatch(fragment):
            raise fail("#status must be 100..599")
        status = int(fragment)
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if not path.startswith("/"):
        path = "/" + path
    if len(path) > MAX_PATH:
        raise fail("path too long")
    host, port = _host_port(authority, fail)
    resolved_scheme: Literal["http", "https"] = "https" if scheme == "https" else "http"
    url = HttpUrl(resolved_scheme, host, port or DEFAULT_PORTS[scheme], path)
    return url, status


def parse_url(spec: str) -> HttpUrl:
    """An ``http(s)://host[:port]/path`` URL, e.g. an offline-notify receiver."""
    url, _ = _parse_url(_require_text(spec, "URL", URL_EXAMPLE).strip(), "URL", URL_EXAMPLE, allow_status=False)
    return url


def parse_urls(spec: str) -> tuple[HttpUrl, ...]:
    """Comma list of URLs (``lanes.io/offline-notify``)."""
    return _split_list(spec, "URL list", URL_EXAMPLE, parse_url)


def parse_target(spec: str) -> Target:
    """One prewarm target: ``tcp://host:port``, ``dns://host`` or ``http(s)://host[:port]/path[#status]``."""
    what = "prewarm target"
    spec = _require_text(spec, what, TARGET_EXAMPLE).strip()

    def fail(reason: str) -> SpecError:
        return _error(what, spec, reason, TARGET_EXAMPLE)

    scheme, sep, rest = spec.partition("://")
    scheme = scheme.lower()
    if scheme in DEFAULT_PORTS and sep:
        url, status = _parse_url(spec, what, TARGET_EXAMPLE, allow_status=True)
        return Target(spec, url.scheme, url.host, url.port, url=url, expect_status=status)
    if not sep or scheme not in ("tcp", "dns"):
        raise fail("unknown scheme" if sep else "missing scheme")
    if not _URL_REST.fullmatch(rest):
        raise fail("spaces or control characters")
    authority = rest.removesuffix("/")
    if "/" in authority or "?" in authority or "#" in authority:
        raise fail(f"{scheme}:// takes no path")
    host, port = _host_port(authority, fail)
    if scheme == "tcp":
        if port is None:
            raise fail("tcp:// needs a port")
        return Target(spec, "tcp", host, port)
    if port is not None:
        raise fail("dns:// takes no port")
    return Target(spec, "dns", host)


def parse_targets(spec: str) -> tuple[Target, ...]:
    """Comma list of prewarm targets (``lanes.io/prewarm``, ``LANES_PREWARM_TARGETS``)."""
    return _split_list(spec, "prewarm targets", TARGET_EXAMPLE, parse_target)
