"""List + watch one kind of object into an in-memory store, the way client-go's reflector does.

The loops react to changes instead of polling, and they must never miss one, across watch timeouts, compacted
history (``410 Gone``), dropped connections and API server restarts. The rules:

- list (paged, a consistent read) and remember the list's ``resourceVersion``; watch from there with
  ``allowWatchBookmarks`` so the version keeps moving even when nothing we select changes;
- a watch that ends normally (the server's ``timeoutSeconds``, randomized like client-go's so that many watches
  do not all reconnect together) is reopened from the last version seen;
- ``410 Gone`` (as an HTTP status or as an ERROR event) means the version is too old to resume: list again,
  replace the whole store (so objects deleted while disconnected disappear) and hand the handler the difference
  between the old store and the new list (DELETED for what vanished, ADDED or MODIFIED for the rest), so nothing
  that happened while disconnected is lost;
- any other failure (connection refused while the API server restarts, 5xx, 429) backs off with jitter and
  resumes from the last version;
- a connection that dies *silently* is noticed within seconds, not at the end of the watch: a NAT on the way that
  loses its state (``conntrack -F`` on the node, a full conntrack table, a load balancer's idle timeout) leaves a
  socket on which nothing ever arrives and nothing fails. The watch socket gets TCP keepalive probes
  (:data:`KEEPALIVE`: about 25 s until a dead peer is reported), and a watch that delivers nothing at all, not
  even the bookmark the API server sends about once a minute, for ``idle_timeout`` is presumed dead (a proxy
  that answers the probes itself) and reopened from the last version.

What is stored is up to the user: full JSON or metadata only (``PartialObjectMetadata``: the API server then sends
no pod templates and no status), each object passed through ``transform`` (a small projection of it) and filed
under ``key(object)``. The controller watches pods (projected), namespaces, Secrets and webhook configurations;
the admission server's owner cache watches namespaces and workloads, metadata only.

Handlers run on the reflector's thread, after the store is updated; they must be quick (schedule work, do not
do it).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from helper.backoff import PLUS_MINUS_20, Backoff
from webhook.kube.client import DEFAULT_TIMEOUT, JSON, JSON_ACCEPT, Gone, Kube, KubeError, WatchStream, status_error

METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_WATCH_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

EventHandler = Callable[[str, JSON, JSON | None], None]
"""``(type, obj, old)``: type is ADDED, MODIFIED or DELETED; ``old`` is the previous stored object, if any."""

#: TCP keepalive of watch sockets: (idle, interval, count) seconds/probes, so a silently dead connection fails
#: after about idle + interval * count = 25 s (client-go notices with HTTP/2 pings after 30 + 15 s).
KEEPALIVE = (10, 5, 3)

KeyFunction = Callable[[JSON], Hashable | None]
"""Where an object (as the API server sent it, before ``transform``) is filed; None skips it."""


def object_key(obj: JSON) -> str | None:
    """``namespace/name``, or ``name`` for a cluster-scoped object; None for an object without a name."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        return None
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


class Reflector:
    """Keeps :attr:`store` equal to the selected objects of ``path`` and reports every change."""

    def __init__(
        self,
        kube: Kube,
        path: str,
        *,
        name: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        metadata_only: bool = False,
        key: KeyFunction = object_key,
        transform: Callable[[JSON], JSON] | None = None,
        on_event: EventHandler | None = None,
        on_synced: Callable[[], None] | None = None,
        on_error: Callable[[], None] | None = None,
        on_resumed: Callable[[], None] | None = None,
        watch_timeout: float = 300,
        idle_timeout: float = 150,
        page_size: int = 500,
        backoff: Backoff | None = None,
        request_timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        logger: logging.Logger | None = None,
    ) -> None:
        self.kube = kube
        self.path = path
        self.name = name
        self.selectors = {"labelSelector": label_selector, "fieldSelector": field_selector}
        self.list_accept = METADATA_LIST_ACCEPT if metadata_only else JSON_ACCEPT
        self.watch_accept = METADATA_WATCH_ACCEPT if metadata_only else JSON_ACCEPT
        self.key = key
        self.transform = transform
        self.on_event = on_event
        self.on_synced = on_synced
        self.on_error = on_error
        self.on_resumed = on_resumed
        self._failing = False
        self.watch_timeout = watch_timeout
        self.idle_timeout = idle_timeout
        self.page_size = page_size
        self.backoff = backoff or Backoff(first=0.25, cap=4.0, jitter=PLUS_MINUS_20)
        self.request_timeout = request_timeout
        self.log = logger or logging.getLogger("lanes.kube.reflector")
        self.synced = threading.Event()
        self.relists = 0
        self.watch_errors = 0
        self.resource_version: str | None = None
        self.thread: threading.Thread | None = None
        self._store: dict[Hashable, JSON] = {}
        self._lock = threading.Lock()
        self._stream: WatchStream | None = None
        self._stopping = threading.Event()

    # -- reading the store (any thread) --------------------------------------------------------------------

    def get(self, key: Hashable) -> JSON | None:
        # No lock: one writer, which replaces entries (never mutates them) and swaps the whole dict on a relist,
        # and a dict read is atomic. Admission lookups of the owner cache take this path on every request.
        return self._store.get(key)

    def items(self) -> list[JSON]:
        """A snapshot of the stored objects."""
        with self._lock:
            return list(self._store.values())

    @property
    def store(self) -> Mapping[Hashable, JSON]:
        """The current map, read-only (updated by every event, replaced by every relist)."""
        return self._store

    def __len__(self) -> int:
        return len(self._store)

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self, stop: threading.Event) -> threading.Thread:
        """:meth:`run` on a daemon thread (kept as :attr:`thread`)."""
        self.thread = threading.Thread(target=self.run, args=(stop,), name=f"lanes-watch-{self.name}", daemon=True)
        self.thread.start()
        return self.thread

    def close(self) -> None:
        """Stop now: ends a blocked watch read from another thread; :meth:`run` returns."""
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            stream.close()

    def run(self, stop: threading.Event) -> None:
        """List and watch until ``stop`` is set or :meth:`close` is called. Running again later resumes from the
        store and the last version (a :meth:`close` before ``run`` starts is forgotten: set ``stop`` too)."""
        self._stopping.clear()

        def stopped() -> bool:
            return stop.is_set() or self._stopping.is_set()

        while not stopped():
            try:
                if self.resource_version is None:
                    self.list()
                started = time.monotonic()
                events = self._watch(stopped)
                if not events and time.monotonic() - started < 1.0 and not stopped():
                    # A watch that ends at once without a single event (a server shutting down, a proxy cutting
                    # streams) must not turn into a reconnect loop at full speed.
                    self._sleep(stop, self.backoff.next_delay())
            except Gone:
                if stopped():
                    break
                self.log.info("resource version expired; relisting", extra={"resource": self.name})
                self.resource_version = None
            except KubeError as exc:
                if stopped():
                    break
                self._count_error()
                delay = self.backoff.next_delay()
                self.log.warning(
                    "list/watch failed; retrying",
                    extra={"resource": self.name, "error": str(exc), "retry_in": round(delay, 2)},
                )
                self._sleep(stop, delay)
            except Exception:
                if stopped():
                    break
                self._count_error()
                self.log.exception("list/watch crashed; retrying", extra={"resource": self.name})
                self._sleep(stop, self.backoff.next_delay())

    def _count_error(self) -> None:
        self.watch_errors += 1
        self._failing = True
        if self.on_error is not None:
            self.on_error()

    def _sleep(self, stop: threading.Event, seconds: float) -> None:
        """Back off, waking early for either signal: the caller's ``stop`` or :meth:`close`."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stopping.wait(min(0.2, remaining))

    # -- list ----------------------------------------------------------------------------------------------

    def list(self) -> str:
        """Replace the store with a fresh consistent list and report the difference; returns the list's
        resourceVersion (also kept as :attr:`resource_version`, where the next watch starts)."""
        query: dict[str, Any] = {k: v for k, v in self.selectors.items() if v}
        query["limit"] = self.page_size
        fresh: dict[Hashable, JSON] = {}
        while True:
            page = self.kube.get(self.path, query, accept=self.list_accept, timeout=self.request_timeout)
            for item in page.get("items") or ():
                if isinstance(item, dict) and (key := self.key(item)) is not None:
                    fresh[key] = self.transform(item) if self.transform else item
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                version = str(meta.get("resourceVersion") or "")
                break
            query["continue"] = token
        with self._lock:
            old = self._store
            self._store = fresh
        self.resource_version = version
        self.relists += 1
        self.backoff.reset()
        self.log.debug("listed", extra={"resource": self.name, "count": len(fresh), "resourceVersion": version})
        if self.on_event is not None:
            for key, obj in old.items():
                if key not in fresh:
                    self._dispatch("DELETED", key, obj, obj)
            for key, obj in fresh.items():
                previous = old.get(key)
                if previous is None:
                    self._dispatch("ADDED", key, obj, None)
                elif _version(previous) != _version(obj):
                    self._dispatch("MODIFIED", key, obj, previous)
        if not self.synced.is_set():
            self.synced.set()
            if self.on_synced is not None:
                self.on_synced()
        return version

    # -- watch ---------------------------------------------------------------------------------------------

    def watch(self, resource_version: str | None = None) -> str:
        """One watch request from ``resource_version`` (default: the last one seen) until the server ends it or
        :meth:`close` is called; returns the last version seen. Raises :class:`Gone` when the version is too old."""
        if resource_version is not None:
            self.resource_version = resource_version
        self._watch(self._stopping.is_set)
        return self.resource_version or ""

    def _watch(self, stopped: Callable[[], bool]) -> int:
        """One watch request, until it ends; the number of events it delivered."""
        shortest = max(1, int(self.watch_timeout))
        timeout = random.randint(shortest, 2 * shortest)
        query: dict[str, Any] = {k: v for k, v in self.selectors.items() if v}
        query.update(resourceVersion=self.resource_version, allowWatchBookmarks=True, timeoutSeconds=timeout)
        stream = self.kube.watch(
            self.path,
            query,
            read_timeout=min(timeout + 30, self.idle_timeout),
            connect_timeout=self.request_timeout[0],
            accept=self.watch_accept,
        )
        self._stream = stream
        stream.keepalive(*KEEPALIVE)
        if self._failing:
            # The API server answers again: tell whoever postponed work because of the outage.
            self._failing = False
            self.log.info("watch resumed", extra={"resource": self.name, "resourceVersion": self.resource_version})
            if self.on_resumed is not None:
                self.on_resumed()
        events = 0
        try:
            if stopped():
                return events
            for event in stream:
                if stopped():
                    return events
                self._apply(event)
                events += 1
                self.backoff.reset()
        finally:
            self._stream = None
            stream.close()
        return events

    def _apply(self, event: JSON) -> None:
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            obj = {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            raise status_error(code or 500, str(obj.get("reason") or "watch error"), obj)
        meta = obj.get("metadata")
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if kind == "BOOKMARK":
            if version:
                self.resource_version = str(version)
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            self.log.warning("unknown watch event", extra={"resource": self.name, "type": kind})
            return
        key = self.key(obj)
        if key is None:
            if version:
                self.resource_version = str(version)
            return
        stored = self.transform(obj) if self.transform else obj
        with self._lock:
            old = self._store.get(key)
            if kind == "DELETED":
                self._store.pop(key, None)
            else:
                self._store[key] = stored
        if version:
            self.resource_version = str(version)
        self._dispatch(str(kind), key, stored, old)

    def _dispatch(self, kind: str, key: Hashable, obj: JSON, old: JSON | None) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, obj, old)
        except Exception:  # a handler bug must not stop the watch (and with it every other object's handling)
            self.log.exception("event handler failed", extra={"resource": self.name, "object": str(key)})


def _version(obj: JSON) -> str | None:
    meta = obj.get("metadata") or {}
    version = meta.get("resourceVersion")
    return str(version) if version is not None else None
