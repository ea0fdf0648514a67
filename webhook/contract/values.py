"""Parsers of single setting values: lane, app name, port, prewarm policy, on/off switch, tag header, specs.

Each turns the text a user wrote (annotation, defaults file, ``--set``) into the typed value, or raises
:class:`ValueError` whose message is ``'<value>': <what is wrong>; e.g. <good example>``, the same shape as the
helper's spec parsers (helper/specs.py) so every warning and validation error reads alike. The spec languages
(prewarm targets, warm-up curve and requests, URLs) are parsed by helper.specs itself, so the webhook accepts
exactly what the helper will run with; the ``parse_*_text`` and list parsers below only wrap them. Which parser
reads which setting is declared in webhook/contract/settings.py.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

from helper.registries import nacos_url
from helper.specs import parse_curve, parse_targets, parse_urls, parse_warmup_requests
from webhook.contract.durations import parse_duration
from webhook.contract.messages import quote

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9]|-(?=[a-z0-9])){0,14}")
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")

PrewarmPolicy = Literal["warn", "require"]


def _fail(value: object, reason: str, example: str) -> ValueError:
    return ValueError(f"{quote(value)}: {reason}; e.g. {example}")


def _text(value: object, example: str) -> str:
    if not isinstance(value, str):
        raise _fail(value, "not a string", example)
    return value.strip()


def _lane_example(value: str) -> str:
    """A good lane close to what the user meant: ``Gray_1`` -> ``gray-1``."""
    guess = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:63].strip("-")
    return guess if guess and _DNS_LABEL.fullmatch(guess) else "gray"


def parse_lane(value: object) -> str:
    """A lane name: an RFC 1123 DNS label (lowercase letters, digits, ``-``; at most 63), e.g. ``gray``."""
    text = _text(value, "gray")
    if not text:
        raise _fail(value, "empty", "gray")
    if not _DNS_LABEL.fullmatch(text):
        reason = "longer than 63 characters" if len(text) > 63 else "not a DNS label (a-z, 0-9, -)"
        raise _fail(value, reason, _lane_example(text))
    return text


def parse_app(value: object) -> str:
    """A logical service name; becomes the ``lanes.io/app`` label, so it must be a label value."""
    text = _text(value, "checkout")
    if not text:
        raise _fail(value, "empty", "checkout")
    if not _LABEL_VALUE.fullmatch(text):
        reason = "longer than 63 characters" if len(text) > 63 else "not a label value (A-Z, a-z, 0-9, -_.)"
        raise _fail(value, reason, "checkout")
    return text


@lru_cache(maxsize=4096)
def app_from_name(name: str) -> str | None:
    """Best label value derived from an object name (up to 253 characters, dots allowed): cut to 63 and trim,
    or None when nothing usable remains."""
    text = name.strip()[:63]
    text = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", text)
    return text if text and _LABEL_VALUE.fullmatch(text) else None


def parse_port(value: object) -> int | str:
    """The app port: a number 1..65535 or a container port name (IANA service name, e.g. ``http``)."""
    text = _text(value, "8080 or http")
    if text.isdigit():
        number = int(text)
        if 1 <= number <= 65535:
            return number
        raise _fail(value, "port must be 1..65535", "8080")
    if _PORT_NAME.fullmatch(text) and any(c.isalpha() for c in text):
        return text
    raise _fail(value, "not a port number or port name", "8080 or http")


def parse_policy(value: object) -> PrewarmPolicy:
    """The prewarm policy: ``warn`` (never block start) or ``require`` (init fails until reachable)."""
    text = _text(value, "warn or require").lower()
    if text == "warn":
        return "warn"
    if text == "require":
        return "require"
    raise _fail(value, "must be warn or require", "require")


def parse_switch(value: object) -> bool:
    """``true`` or ``false`` (any case); a YAML boolean is accepted too (defaults files)."""
    if isinstance(value, bool):
        return value
    text = _text(value, '"false"').lower()
    if text == "true":
        return True
    if text == "false":
        return False
    raise _fail(value, "must be true or false", '"false"')


def parse_tag_header(value: object) -> str:
    """An HTTP header name (token characters), returned lowercased as HTTP/2 and most proxies see it."""
    text = _text(value, "x-lane")
    if not _HEADER.fullmatch(text):
        raise _fail(value, "not an HTTP header name", "x-lane")
    return text.lower()


def parse_agent_port(value: object) -> int:
    """The agent's port: 1..65535 and outside 15000-15090, which Istio's proxy reserves."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(value, "not a port number", "15400")
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise _fail(value, "port must be 1..65535", "15400")
    number = int(text)
    if 15000 <= number <= 15090:
        raise _fail(value, "inside Istio's reserved 15000-15090", "15400")
    return number


MAX_UID = 2**31 - 1  # Kubernetes' runAsUser range


def parse_uid(value: object) -> int:
    """A non-root user ID for the injected containers' ``runAsUser``: 1..2147483647 (0 is root, which
    ``runAsNonRoot`` refuses)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(value, "not a user ID", "65532")
    text = str(value).strip()
    if not text.isdecimal() or not text.isascii():
        raise _fail(value, "not a user ID", "65532")
    number = int(text)
    if number == 0:
        raise _fail(value, "0 is root, refused by runAsNonRoot", "65532")
    if number > MAX_UID:
        raise _fail(value, f"user IDs are 1..{MAX_UID}", "65532")
    return number


def parse_positive_duration(value: object) -> float:
    """A duration (:func:`~webhook.contract.durations.parse_duration`) that must be more than 0: a deadline."""
    seconds = parse_duration(value)
    if seconds == 0:
        shown = value.strip() if isinstance(value, str) else value
        raise ValueError(f"'{shown}': must be more than 0; e.g. 5s")
    return seconds


def parse_curve_text(value: Any) -> str:
    """A warm-up curve, validated by helper.specs and kept as the user wrote it: the helper parses the same text."""
    parse_curve(value)
    return str(value).strip()


def parse_warmup_requests_text(value: Any) -> str:
    """Self warm-up requests, validated by helper.specs and kept as written (the helper parses the same text)."""
    parse_warmup_requests(value)
    return str(value).strip()


def parse_target_list(value: Any) -> tuple[str, ...]:
    """Prewarm targets: each as the user wrote it, in order, once validated by helper.specs."""
    return tuple(target.raw for target in parse_targets(value))


def parse_url_list(value: Any) -> tuple[str, ...]:
    """Going-offline receivers: the URLs as written, in order, once validated by helper.specs."""
    parse_urls(value)
    return tuple(item.strip() for item in str(value).split(",") if item.strip())


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def parse_registry(value: Any) -> str:
    """An external registry URL (``nacos://...``), validated by helper/registries/nacos_url.py, kept as written."""
    text = _text(value, nacos_url.EXAMPLE)
    try:
        nacos_url.parse(text)
    except nacos_url.RegistryUrlError as error:
        raise ValueError(f"{quote(text)}: {error}") from None
    return text


def parse_secret_name(value: Any) -> str:
    """The name of a Secret in the pod's namespace (a DNS subdomain)."""
    text = _text(value, "nacos-credentials")
    if not _DNS_SUBDOMAIN.fullmatch(text):
        raise _fail(value, "not a Secret name (lowercase a-z, 0-9, '-', '.')", "nacos-credentials")
    return text


def parse_nonempty(value: object) -> object:
    """Text that must not be blank (an image, a namespace), stripped; any other type is left to the field's type."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value.strip() if isinstance(value, str) else value
