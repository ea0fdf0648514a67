"""JSON over the kubernetes client's HTTP stack: plain dicts in and out, and watch streams that can be closed.

Why not the generated typed API? The loops here need four things it does not give: (1) a watch that another
thread can interrupt at once (a leader that loses its lease must stop reading and acting immediately, and
``kubernetes.watch.Watch.stop()`` only takes effect at the next event), (2) objects as plain JSON so a watch
cache can keep a small projection of each object instead of a deep model tree, (3) a choice of ``Accept``, so a
cache that needs only metadata asks for ``PartialObjectMetadata`` and the API server sends no pod templates and
no status, and (4) one error type that carries the HTTP status, the API's ``Status`` reason and ``Retry-After``.
Authentication, TLS and token refresh still come from the ``ApiClient`` (kubeconfig, in-cluster service account,
exec plugins), through its public ``param_serialize``/``call_api``. Answers are decoded with orjson: a
cluster-wide list of ReplicaSets or pods is large.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
import urllib3

JSON = dict[str, Any]

#: (connect, read) seconds for ordinary requests.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

JSON_ACCEPT = "application/json"


class KubeError(Exception):
    """A failed API call. ``status`` is the HTTP status, or 0 when the server could not be reached."""

    def __init__(self, status: int, reason: str, body: JSON | None = None, retry_after: float | None = None):
        self.status = status
        self.reason = reason
        self.body = body or {}
        self.retry_after = retry_after
        super().__init__(f"{status} {reason}: {self.message}" if status else f"unreachable: {reason}")

    @property
    def message(self) -> str:
        """The API server's human-readable explanation (``Status.message``), if any."""
        return str(self.body.get("message") or self.reason)

    @property
    def api_reason(self) -> str:
        """``Status.reason`` (``NotFound``, ``Conflict``, ``TooManyRequests``, ...), if any."""
        return str(self.body.get("reason") or "")


class Gone(KubeError):
    """HTTP 410: the resourceVersion (or ``continue`` token) is too old to resume from; only a fresh list helps."""


def status_error(status: int, reason: str, body: JSON | None = None, retry_after: float | None = None) -> KubeError:
    """The :class:`KubeError` for an HTTP status (or a watch ERROR event's ``code``): :class:`Gone` for 410."""
    return (Gone if status == 410 else KubeError)(status, reason, body, retry_after)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_from(status: int, reason: str, data: bytes, headers: Mapping[str, str]) -> KubeError:
    body: JSON | None = None
    try:
        parsed = orjson.loads(data) if data else None
        body = parsed if isinstance(parsed, dict) else None
    except ValueError:
        body = {"message": data[:300].decode(errors="replace")}
    return status_error(status, reason, body, _retry_after(headers))


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-empty lines of a newline-delimited stream, whatever the chunking (linear in the stream's size, also
    when one chunk holds thousands of events, as after a reconnect)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        start = 0
        while (newline := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:newline])
            start = newline + 1
            if line.strip():
                yield line
        del buffer[:start]
    if buffer.strip():
        yield bytes(buffer)


class WatchStream:
    """Events of one watch request; iterate it, and ``close()`` it from any thread to end the iteration now."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[JSON]:
        try:
            for line in split_lines(self._response.stream(16 * 1024, decode_content=True)):
                if self._closed.is_set():
                    return
                yield orjson.loads(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if self._closed.is_set():
                return
            raise KubeError(0, f"watch stream broken: {exc}") from None
        finally:
            self.close()

    def keepalive(self, idle: int, interval: int, count: int) -> bool:
        """Turn on TCP keepalive for this stream's socket (probe after ``idle`` s of silence, every ``interval``
        s, give up after ``count`` unanswered probes); False when the socket cannot be reached.

        Why: a watch mostly *receives*. When a NAT on the way loses the connection's state (``conntrack -F`` on
        the node, a conntrack table overflow, a cloud load balancer's idle timeout) without closing it, the server's
        packets stop arriving and nothing ever fails on this side: without probes, the reader waits for its read
        timeout (minutes) while every change goes unseen. The probes either re-create the NAT state or fail, and
        the read then fails with ``ETIMEDOUT``/``ECONNRESET`` within about ``idle + interval * count`` seconds.
        """
        connection = getattr(self._response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is None:
            return False
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count)):
                if hasattr(socket, option):
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Unblock a reader stuck in ``recv`` (shutdown the socket) and release the connection."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(Exception):
            self._response.shutdown()
        with contextlib.suppress(Exception):
            self._response.release_conn()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Kube:
    """The handful of verbs the controller, ``lanes doctor`` and the owner cache use, on raw API paths."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    # -- plumbing ------------------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str | None,
        timeout: float | tuple[float, float] | None,
        accept: str = JSON_ACCEPT,
    ) -> Any:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        method, url, headers, body, post = self.api_client.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        if query:
            url += "?" + urllib.parse.urlencode({k: _query_value(v) for k, v in query.items() if v is not None})
        try:
            return self.api_client.call_api(method, url, headers, body, post, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(0, f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # the client wraps TLS failures in ApiException(status=0)
            status = getattr(exc, "status", None)
            if status == 0:
                raise KubeError(0, str(getattr(exc, "reason", exc))) from None
            raise

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | tuple[float, float] | None = DEFAULT_TIMEOUT,
        accept: str = JSON_ACCEPT,
    ) -> JSON:
        """One request; the decoded JSON answer, or :class:`KubeError`."""
        response = self._send(method, path, query, body, content_type, timeout, accept)
        try:
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(0, f"{type(exc).__name__}: {exc}") from None
        if not 200 <= response.status <= 299:
            raise _error_from(response.status, response.reason or "", data or b"", response.headers)
        if not data:
            return {}
        parsed = orjson.loads(data)
        return parsed if isinstance(parsed, dict) else {"items": parsed}

    # -- verbs ---------------------------------------------------------------------------------------------

    def get(self, path: str, query: Mapping[str, Any] | None = None, **kw: Any) -> JSON:
        return self.request("GET", path, query=query, **kw)

    def create(self, path: str, body: JSON, **kw: Any) -> JSON:
        return self.request("POST", path, body=body, **kw)

    def replace(self, path: str, body: JSON, **kw: Any) -> JSON:
        """PUT: with ``metadata.resourceVersion`` in ``body`` it fails with 409 if the object changed since."""
        return self.request("PUT", path, body=body, **kw)

    def patch(self, path: str, body: Any, patch_type: str = "strategic", **kw: Any) -> JSON:
        content_type = {
            "strategic": "application/strategic-merge-patch+json",
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            # server-side apply: pass query={"fieldManager": ..., "force": ...}
            "apply": "application/apply-patch+yaml",
        }[patch_type]
        return self.request("PATCH", path, body=body, content_type=content_type, **kw)

    def delete(self, path: str, body: JSON | None = None, **kw: Any) -> JSON:
        return self.request("DELETE", path, body=body, **kw)

    def watch(
        self,
        path: str,
        query: Mapping[str, Any],
        read_timeout: float,
        *,
        connect_timeout: float = DEFAULT_TIMEOUT[0],
        accept: str = JSON_ACCEPT,
    ) -> WatchStream:
        """Open ``?watch=1`` on a collection; the caller iterates and closes the returned stream."""
        params = dict(query)
        params["watch"] = "true"
        response = self._send("GET", path, params, None, None, (connect_timeout, read_timeout), accept)
        if not 200 <= response.status <= 299:
            data = response.read()
            raise _error_from(response.status, response.reason or "", data or b"", response.headers)
        return WatchStream(response.response)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def path_segment(name: str) -> str:
    """``name`` percent-encoded as one URL path segment (object names are DNS-ish, but never trust input that
    builds a URL: a ``/`` or ``?`` in it must not change which object a request addresses)."""
    return urllib.parse.quote(name, safe="")

