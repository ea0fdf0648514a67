"""AdmissionReview v1: parsing requests and building responses.

Hand-checked with orjson rather than pydantic: the envelope has a dozen fields, the object inside it is passed
to the core untouched, and a hand check both runs in a few microseconds and lets every error say exactly which
field is wrong ("request.uid must be a string, got number"). Two kinds of bad input are told apart:

* a body that is not an AdmissionReview v1 at all -> :class:`ReviewError` -> HTTP 400 with ``{"error": ...}``;
* a well-formed AdmissionReview whose contents are odd (unexpected kind, operation, an object that is not an
  object) -> parsed fine; the app allows it unchanged with a warning, because a webhook must never block the
  cluster over input it does not understand.
"""

from __future__ import annotations

import binascii
from typing import Any, NamedTuple

import orjson

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
#: The longest warning the API server passes on unchanged (longer ones may be truncated by it).
MAX_WARNING_LENGTH = 120
#: Largest accepted request body. The API server caps request bodies at 3 MiB, but an UPDATE review carries
#: both ``object`` and ``oldObject``, so twice that is the most a legitimate review can need.
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024


class ReviewError(ValueError):
    """The body is not an AdmissionReview v1; the message (returned to the caller) says precisely why."""


# NamedTuples rather than frozen dataclasses: three are built per admission, and a tuple is built in C where a frozen
# dataclass pays one object.__setattr__ per field.


class GroupVersionKind(NamedTuple):
    group: str
    version: str
    kind: str


class GroupVersionResource(NamedTuple):
    group: str
    version: str
    resource: str


class AdmissionRequest(NamedTuple):
    """The fields of ``request`` the webhook uses; ``object``/``old_object`` are passed on as decoded JSON."""

    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource | None
    sub_resource: str
    operation: str
    namespace: str
    name: str
    object: Any
    old_object: Any
    dry_run: bool


_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _string(container: dict[str, Any], key: str, where: str, *, required: bool) -> str:
    value = container.get(key)
    if value is None:
        if required:
            raise ReviewError(f"{where}.{key} is missing")
        return ""
    if not isinstance(value, str):
        raise ReviewError(f"{where}.{key} must be a string, got {json_type(value)}")
    return value


def _object(container: dict[str, Any], key: str, where: str, *, required: bool) -> dict[str, Any] | None:
    value = container.get(key)
    if value is None:
        if required:
            raise ReviewError(f"{where}.{key} is missing")
        return None
    if not isinstance(value, dict):
        raise ReviewError(f"{where}.{key} must be an object, got {json_type(value)}")
    return value


def parse_review(body: bytes) -> AdmissionRequest:
    """Decode and check an AdmissionReview v1 request body.

    Raises :class:`ReviewError` for anything that is not one. Checks only the envelope; ``request.object`` may
    be any JSON value (the caller decides what an odd object means).
    """
    if not body:
        raise ReviewError("body is empty; expected an AdmissionReview v1 JSON object")
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError(f"body is not valid JSON: {exc}") from None
    if not isinstance(review, dict):
        raise ReviewError(f"body must be a JSON object (an AdmissionReview), got {json_type(review)}")
    api_version = review.get("apiVersion")
    if api_version != API_VERSION:
        if api_version is None:
            raise ReviewError(f"apiVersion is missing; expected {API_VERSION!r}")
        raise ReviewError(f"apiVersion must be {API_VERSION!r}, got {_show(api_version)}")
    kind = review.get("kind")
    if kind != KIND:
        if kind is None:
            raise ReviewError(f"kind is missing; expected {KIND!r}")
        raise ReviewError(f"kind must be {KIND!r}, got {_show(kind)}")
    request = _object(review, "request", "AdmissionReview", required=True)
    assert request is not None
    uid = _string(request, "uid", "request", required=True)
    if not uid:
        raise ReviewError("request.uid is empty")

    kind_obj = _object(request, "kind", "request", required=True)
    assert kind_obj is not None
    gvk = GroupVersionKind(
        _string(kind_obj, "group", "request.kind", required=False),
        _string(kind_obj, "version", "request.kind", required=False),
        _string(kind_obj, "kind", "request.kind", required=True),
    )
    resource_obj = _object(request, "resource", "request", required=False)
    gvr = None
    if resource_obj is not None:
        gvr = GroupVersionResource(
            _string(resource_obj, "group", "request.resource", required=False),
            _string(resource_obj, "version", "request.resource", required=False),
            _string(resource_obj, "resource", "request.resource", required=True),
        )
    dry_run = request.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise ReviewError(f"request.dryRun must be a boolean, got {json_type(dry_run)}")
    return AdmissionRequest(
        uid=uid,
        kind=gvk,
        resource=gvr,
        sub_resource=_string(request, "subResource", "request", required=False),
        operation=_string(request, "operation", "request", required=True),
        namespace=_string(request, "namespace", "request", required=False),
        name=_string(request, "name", "request", required=False),
        object=request.get("object"),
        old_object=request.get("oldObject"),
        dry_run=bool(dry_run),
    )


def _show(value: Any) -> str:
    """A short rendering of an unexpected value for an error message."""
    if isinstance(value, str):
        return repr(value[:80])
    return json_type(value)


def clean_warning(text: str) -> str:
    """Make a warning acceptable to the API server, which drops warnings with non-printable characters and
    may truncate long ones: replace control characters, cap at 120 characters."""
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    if len(text) > MAX_WARNING_LENGTH:
        text = text[: MAX_WARNING_LENGTH - 1] + "\u2026"
    return text or "(empty warning)"


def allow(uid: str, patch: list[dict[str, Any]] | None = None, warnings: list[str] | None = None) -> bytes:
    """An ``allowed: true`` response; ``patchType``/``patch`` only when there is something to patch."""
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        # Spliced in as bytes: base64 never needs JSON escaping, so this is what encoding the text would give,
        # without decoding tens of kilobytes to str and scanning them again.
        response["patch"] = orjson.Fragment(b'"' + binascii.b2a_base64(orjson.dumps(patch), newline=False) + b'"')
    if warnings:
        response["warnings"] = [clean_warning(w) for w in warnings]
    return _review(response)


def deny(uid: str, message: str, code: int = 400, warnings: list[str] | None = None) -> bytes:
    """An ``allowed: false`` response; the API server shows ``message`` to the user who applied the object."""
    response: dict[str, Any] = {
        "uid": uid,
        "allowed": False,
        "status": {"status": "Failure", "code": code, "reason": "BadRequest", "message": message},
    }
    if warnings:
        response["warnings"] = [clean_warning(w) for w in warnings]
    return _review(response)


def _review(response: dict[str, Any]) -> bytes:
    return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": response})


def error_body(message: str) -> bytes:
    """The body of a 4xx answer to something that is not an AdmissionReview."""
    return orjson.dumps({"error": message})
