"""The admission server's HTTP application: /mutate, /validate, /healthz, /readyz, /metrics.

Admission sits in the path of every pod creation, so the hot path is kept bare: the admission routes are plain
Starlette routes on the FastAPI app (no dependency injection, no pydantic response models), the raw body is
parsed once with orjson, the core runs synchronously on the event loop (it is sub-millisecond and does no I/O;
a threadpool hop would cost more than the work), and the answer is pre-serialized bytes.

Failure policy of the transport: input that is not an AdmissionReview gets a 400 with a precise error;
anything else, including a bug in the core, gets ``allowed: true`` unchanged plus a warning, an error log and
a metric.
A webhook bug must never block pod creation, and no path answers 500.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any, NamedTuple

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from webhook.admission.codec import (
    DEFAULT_MAX_BODY_BYTES,
    AdmissionRequest,
    ReviewError,
    allow,
    deny,
    error_body,
    parse_review,
)
from webhook.admission.metrics import CONTENT_TYPE, Metrics
from webhook.contract.defaults import ClusterDefaults
from webhook.injection import admit as review
from webhook.injection.admit import OwnerLookup

log = logging.getLogger("lanes.admission")

#: Above this declared size the 413 also closes the connection instead of reading and discarding the rest.
_DISCARD_LIMIT = 64 * 1024 * 1024

MUTATE_PATH = "/mutate"
VALIDATE_PATH = "/validate"

_WORKLOAD_KINDS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}
_JSON = "application/json"
INTERNAL_ERROR_WARNING = "lanes: internal webhook error; admitted unchanged (see lanes-webhook logs)"


class Lifecycle:
    """Readiness shared by /readyz and the shutdown sequence (webhook.admission.serving).

    Ready means: every readiness check passes (the owner cache has synced) and the server is not draining.
    Once draining starts, /readyz answers 503 so the Service removes this pod from its endpoints while it
    keeps answering admission calls that are already on their way.
    """

    def __init__(self, checks: dict[str, Callable[[], bool]] | None = None) -> None:
        self.checks = dict(checks or {})
        self.draining = False

    def begin_drain(self) -> None:
        self.draining = True

    def not_ready_reason(self) -> str | None:
        """None when ready, else a short reason for /readyz."""
        if self.draining:
            return "shutting down"
        for name, check in self.checks.items():
            try:
                if not check():
                    return f"{name} not ready"
            except Exception:  # a broken check must not turn /readyz into a 500
                log.exception("readiness check %s failed", name)
                return f"{name} check failed"
        return None


class Answer(NamedTuple):
    """What an admission endpoint replies, plus what the log line and metrics need to know about it (a NamedTuple:
    one per request, built in C)."""

    body: bytes
    outcome: str
    status: int = 200
    warnings: int = 0
    uid: str = ""
    namespace: str = ""
    name: str = ""
    operation: str = ""
    kind: str = ""
    dry_run: bool = False
    detail: str = ""


class AdmissionHandler:
    """Turns AdmissionReview bodies into answers; synchronous and free of HTTP so it is testable alone."""

    def __init__(self, defaults: ClusterDefaults, owners: OwnerLookup | None, metrics: Metrics) -> None:
        self.defaults = defaults
        self.owners = owners
        self.metrics = metrics

    # /mutate ----------

    def mutate(self, body: bytes) -> Answer:
        try:
            req = parse_review(body)
        except ReviewError as exc:
            return Answer(error_body(str(exc)), "bad_request", status=400, detail=str(exc))
        try:
            return self._mutate(req)
        except Exception:  # a transport bug: same policy as a core bug
            return self._internal_error(MUTATE_PATH, req, "transport")

    def _mutate(self, req: AdmissionRequest) -> Answer:
        ignored = self._unexpected_pod_request(req)
        if ignored is not None:
            return self._ignored(req, ignored)
        pod = req.object
        metadata = pod.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            return self._ignored(req, "lanes: Pod metadata is not an object; admitted unchanged")
        metadata = metadata or {}
        namespace = req.namespace or _str(metadata.get("namespace"))
        if not namespace:
            return self._ignored(req, "lanes: request has no namespace; admitted unchanged")
        try:
            result = review.admit_pod(pod, namespace, self.defaults, self.owners)
            patch = result.patch
            warnings = [str(w) for w in result.warnings]
            body = allow(req.uid, patch, warnings)  # encoding is part of the guarded step: bad ops -> error
        except Exception:
            return self._internal_error(MUTATE_PATH, req, "core", namespace)
        if result.injected:
            outcome = "injected"
            self.metrics.injections.inc()
        elif patch:
            outcome = "patched"
        else:
            outcome = "skipped"
            self.metrics.skips.labels(result.skip_reason or "none").inc()
        return Answer(
            body,
            outcome,
            warnings=len(warnings),
            detail=result.skip_reason or "",
            **_context(req, namespace),
        )

    @staticmethod
    def _unexpected_pod_request(req: AdmissionRequest) -> str | None:
        """Why a review is not a Pod CREATE this endpoint handles, or None when it is."""
        gvk = req.kind
        if gvk.kind != "Pod" or gvk.group != "":
            return f"lanes: /mutate handles Pods, got {_gvk(req)}; admitted unchanged"
        if req.resource is not None and req.resource.resource != "pods":
            return f"lanes: /mutate handles pods, got resource {req.resource.resource!r}; admitted unchanged"
        if req.sub_resource:
            return f"lanes: /mutate ignores subresource {req.sub_resource!r}; admitted unchanged"
        if req.operation != "CREATE":
            return f"lanes: /mutate handles CREATE, got {req.operation!r}; admitted unchanged"
        if not isinstance(req.object, dict):
            return "lanes: request.object is not a Pod object; admitted unchanged"
        return None

    # /validate ----------

    def validate(self, body: bytes) -> Answer:
        try:
            req = parse_review(body)
        except ReviewError as exc:
            return Answer(error_body(str(exc)), "bad_request", status=400, detail=str(exc))
        try:
            return self._validate(req)
        except Exception:
            return self._internal_error(VALIDATE_PATH, req, "transport")

    def _validate(self, req: AdmissionRequest) -> Answer:
        ignored = self._unexpected_workload_request(req)
        if ignored is not None:
            return self._ignored(req, ignored)
        try:
            errors = [str(e) for e in review.validate_workload(req.object, self.defaults)]
            old_errors: set[str] = set()
            if errors and req.operation == "UPDATE" and isinstance(req.old_object, dict):
                old_errors = {str(e) for e in review.validate_workload(req.old_object, self.defaults)}
        except Exception:
            return self._internal_error(VALIDATE_PATH, req, "core")
        context = _context(req, req.namespace)
        if not errors:
            return Answer(allow(req.uid), "accepted", **context)
        if any(e not in old_errors for e in errors):
            message = "invalid lanes.io annotations: " + "; ".join(errors)
            return Answer(deny(req.uid, message), "rejected", detail=message, **context)
        # Every error was already on the stored object: rejecting would block unrelated updates of an object
        # that predates the webhook (finalizer removal during deletion, scaling tools), so warn instead.
        warnings = [f"lanes: {e}" for e in errors]
        return Answer(allow(req.uid, None, warnings), "accepted", warnings=len(warnings), **context)

    @staticmethod
    def _unexpected_workload_request(req: AdmissionRequest) -> str | None:
        gvk = req.kind
        if gvk.group != "apps" or gvk.kind not in _WORKLOAD_KINDS:
            return f"lanes: /validate handles apps Deployment/StatefulSet/DaemonSet, got {_gvk(req)}; allowed"
        if req.resource is not None and req.resource.resource != _WORKLOAD_KINDS[gvk.kind]:
            return f"lanes: /validate got resource {req.resource.resource!r} for {gvk.kind}; allowed"
        if req.sub_resource:
            return f"lanes: /validate ignores subresource {req.sub_resource!r}; allowed"
        if req.operation not in ("CREATE", "UPDATE"):
            return f"lanes: /validate handles CREATE and UPDATE, got {req.operation!r}; allowed"
        if not isinstance(req.object, dict):
            return f"lanes: request.object is not a {gvk.kind} object; allowed"
        return None

    # shared ----------

    def _ignored(self, req: AdmissionRequest, warning: str) -> Answer:
        namespace = req.namespace
        return Answer(
            allow(req.uid, None, [warning]), "ignored", warnings=1, detail=warning, **_context(req, namespace)
        )

    def _internal_error(self, path: str, req: AdmissionRequest, where: str, namespace: str = "") -> Answer:
        context = _context(req, namespace or req.namespace)
        log.error(
            "internal error in the %s; admitted unchanged",
            where,
            exc_info=True,
            extra={"fields": {"path": path, **context}},
        )
        self.metrics.errors.labels(path).inc()
        return Answer(allow(req.uid, None, [INTERNAL_ERROR_WARNING]), "error", warnings=1, detail=where, **context)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _gvk(req: AdmissionRequest) -> str:
    gvk = req.kind
    group = f"{gvk.group}/" if gvk.group else ""
    return f"{group}{gvk.version}, Kind={gvk.kind}"[:60]


def _context(req: AdmissionRequest, namespace: str) -> dict[str, Any]:
    """The identifying fields of a request for its log line; the name falls back to metadata because Pods
    created by controllers arrive with only ``generateName``."""
    name = req.name
    obj = req.object
    if not name and isinstance(obj, dict):
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            name = _str(metadata.get("name")) or _str(metadata.get("generateName"))
    return {
        "uid": req.uid,
        "namespace": namespace,
        "name": name,
        "operation": req.operation,
        "kind": req.kind.kind,
        "dry_run": req.dry_run,
    }


class _TooLarge(Exception):
    def __init__(self, declared: int | None) -> None:
        self.declared = declared


class _Disconnected(Exception):
    pass


class _WrongContentType(Exception):
    def __init__(self, declared: bytes) -> None:
        self.declared = declared


def _json_media_type(value: bytes) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``), in any case."""
    return value.split(b";", 1)[0].strip().lower() == b"application/json"


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, or :class:`_TooLarge` as soon as it exceeds ``limit`` (never buffered beyond it).

    A declared ``Content-Type`` other than JSON is :class:`_WrongContentType` before anything is read (the API
    server always sends ``application/json``; a missing header is accepted, as curl without ``-H`` sends none)."""
    declared: int | None = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit():
                declared = int(value)
                if declared > limit:
                    raise _TooLarge(declared)
        elif name == b"content-type" and value != b"application/json" and not _json_media_type(value):
            raise _WrongContentType(value)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _TooLarge(declared)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class AdmissionEndpoint:
    """Raw ASGI endpoint of one admission path: reads the body, asks the handler, records, answers.

    Raw ASGI rather than a Starlette request/response pair: no Request object, no header parsing beyond
    Content-Length, and (through :class:`AdmissionApp`) none of the framework's per-request middleware.
    It never raises: every failure becomes an answer.
    """

    def __init__(
        self,
        path: str,
        decide: Callable[[bytes], Answer],
        metrics: Metrics,
        lifecycle: Lifecycle,
        max_body_bytes: int,
    ) -> None:
        self.path = path
        self.decide = decide
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.max_body_bytes = max_body_bytes
        self._counters: dict[str, Any] = {}  # outcome -> pre-resolved counter child (labels() takes a lock)
        self._duration = metrics.duration.labels(path)
        self._warnings = metrics.warnings.labels(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        close = False
        try:
            body = await _read_body(scope, receive, self.max_body_bytes)
            answer = self.decide(body)
        except _TooLarge as exc:
            message = f"request body exceeds the {self.max_body_bytes} byte limit"
            answer = Answer(error_body(message), "too_large", status=413, detail=message)
            # Small excess: the server reads and discards the rest and the connection stays usable.
            close = exc.declared is None or exc.declared > _DISCARD_LIMIT
        except _WrongContentType as exc:
            shown = exc.declared[:80].decode("latin-1")
            message = f"Content-Type must be application/json (an AdmissionReview), got {shown!r}"
            answer = Answer(error_body(message), "bad_request", status=415, detail=message)
        except _Disconnected:
            return  # nobody is left to answer
        except Exception:  # last resort; decide() already guards everything after parsing
            log.exception("unexpected error reading the request", extra={"fields": {"path": self.path}})
            answer = Answer(error_body("internal error while reading the request"), "error", status=400)
        if self.lifecycle.draining:
            close = True  # move the API server's keep-alive connection to a pod that stays
        self._record(answer, perf_counter() - start)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer.body))]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    def _record(self, answer: Answer, elapsed: float) -> None:
        try:
            counter = self._counters.get(answer.outcome)
            if counter is None:
                counter = self._counters[answer.outcome] = self.metrics.requests.labels(self.path, answer.outcome)
            counter.inc()
            self._duration.observe(elapsed)
            if answer.warnings:
                self._warnings.inc(answer.warnings)
            _log_answer(self.path, answer, elapsed)
        except Exception:  # bookkeeping must never cost the caller its answer
            with contextlib.suppress(Exception):
                log.exception("recording the admission failed", extra={"fields": {"path": self.path}})


class AdmissionApp(FastAPI):
    """FastAPI with a fast lane: ``POST /mutate`` and ``POST /validate`` go straight to their
    :class:`AdmissionEndpoint`, past the framework's per-request middleware (error pages, telemetry, body
    limits, exception handlers), which they do not need: the endpoints enforce their own body limit and never
    raise. Everything else, including other methods on those paths (405), takes the normal FastAPI route.

    Kept on evidence: bench/admission.py measures this path against the same endpoints routed through FastAPI
    (``fast_lane`` off), on the same uvicorn, with the floor measured on both (docs/performance.md)."""

    admission_endpoints: dict[str, AdmissionEndpoint]
    fast_lane: dict[str, AdmissionEndpoint]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.fast_lane.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    defaults: ClusterDefaults,
    owners: OwnerLookup | None,
    *,
    metrics: Metrics | None = None,
    lifecycle: Lifecycle | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    fast_lane: bool = True,
) -> FastAPI:
    """Build the admission app.

    ``owners`` is the watch cache (``webhook.admission.owners.WatchCache``) or None to resolve without owner and
    namespace metadata. When ``owners`` has an ``is_synced()`` method and no ``lifecycle`` is given, /readyz
    waits for it. The app exposes ``app.state.lifecycle``, ``app.state.metrics`` and ``app.state.handler``.
    ``fast_lane=False`` routes the admission paths through FastAPI's middleware and router like every other path
    (same endpoints, same answers): the benchmark's comparison, no reason to use it in production.
    """
    metrics = metrics or Metrics()
    if lifecycle is None:
        is_synced = getattr(owners, "is_synced", None)
        lifecycle = Lifecycle({"owner cache": is_synced} if callable(is_synced) else None)
    handler = AdmissionHandler(defaults, owners, metrics)
    app = AdmissionApp(title="lanes-webhook", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.lifecycle = lifecycle
    app.state.metrics = metrics
    app.state.handler = handler
    app.admission_endpoints = {
        path: AdmissionEndpoint(path, decide, metrics, lifecycle, max_body_bytes)
        for path, decide in ((MUTATE_PATH, handler.mutate), (VALIDATE_PATH, handler.validate))
    }
    app.fast_lane = app.admission_endpoints if fast_lane else {}
    for path, endpoint in app.admission_endpoints.items():
        # Also routed, for callers that reach the router directly (mounted apps, test clients).
        app.router.routes.append(Route(path, endpoint, methods=["POST"]))

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON)

    async def readyz(request: Request) -> Response:
        reason = lifecycle.not_ready_reason()
        if reason is None:
            return Response(b'{"status":"ready"}', media_type=_JSON)
        return Response(orjson.dumps({"status": "not ready", "reason": reason}), status_code=503, media_type=_JSON)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    app.add_route("/healthz", healthz, methods=["GET"])
    app.add_route("/readyz", readyz, methods=["GET"])
    app.add_route("/metrics", metrics_endpoint, methods=["GET"])
    return app


def _log_answer(path: str, answer: Answer, elapsed: float) -> None:
    """One line per admission: errors at ERROR (already logged with a traceback), 4xx and rejections at
    WARNING, everything else at INFO."""
    level = logging.INFO
    if answer.status >= 400 or answer.outcome == "rejected":
        level = logging.WARNING
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "admission",
        extra={
            "fields": {
                "path": path,
                "uid": answer.uid,
                "namespace": answer.namespace,
                "name": answer.name,
                "kind": answer.kind,
                "operation": answer.operation,
                "dry_run": answer.dry_run,
                "outcome": answer.outcome,
                "status": answer.status,
                "warnings": answer.warnings,
                "detail": answer.detail,
                "duration_ms": round(elapsed * 1000, 3),
            }
        },
    )
