"""List + watch one kind of object into an in-memory store, the way client-go's reflector does.

The loops react to changes instead of polling, and they must never miss one, across watch timeouts, compacted
history (``410 Gone``), dropped connections and API server restarts. The rules:

- list (paged, a consistent read) and remember the list's ``resourceVersion``; watch from there with
  ``allowWatchBookmarks`` so the version keeps moving even when nothing we select changes;
- a watch that ends normally (the server's ``timeoutSeconds``) is reopened from the last version seen;
- ``410 Gone`` (as an HTTP status or as an ERROR event) means the version is too old to resume: list again and
  hand the handler the difference between the old store and the new list (DELETED for what vanished, ADDED or
  MODIFIED for the rest), so nothing that happened while disconnected is lost;
- any other failure (connection refused while the API server restarts, 5xx, 429) backs off with jitter and
  resumes from the last version; the read timeout exceeds the server-side timeout so a silently dead connection
  is noticed too.

Handlers run on the reflector's thread, after the store is updated; they must be quick (schedule work, do not
do it).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from webhook.kube.backoff import Backoff
from webhook.kube.client import JSON, Kube, KubeError, WatchStream

log = logging.getLogger("lanes.controller.reflector")

EventHandler = Callable[[str, JSON, JSON | None], None]
"""``(type, obj, old)``: type is ADDED, MODIFIED or DELETED; ``old`` is the previous stored object, if any."""


def object_key(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


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
        on_event: EventHandler | None = None,
        on_synced: Callable[[], None] | None = None,
        transform: Callable[[JSON], JSON] | None = None,
        on_error: Callable[[], None] | None = None,
        on_resumed: Callable[[], None] | None = None,
        watch_timeout: int = 300,
        page_size: int = 500,
        backoff: Backoff | None = None,
    ) -> None:
        self.kube = kube
        self.path = path
        self.name = name
        self.selectors = {"labelSelector": label_selector, "fieldSelector": field_selector}
        self.on_event = on_event
        self.on_synced = on_synced
        self.transform = transform
        self.on_error = on_error
        self.on_resumed = on_resumed
        self._failing = False
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.backoff = backoff or Backoff(initial=0.25, cap=4.0)
        self.synced = threading.Event()
        self.relists = 0
        self.watch_errors = 0
        self.resource_version: str | None = None
        self._store: dict[str, JSON] = {}
        self._lock = threading.Lock()
        self._stream: WatchStream | None = None
        self._stopping = threading.Event()

    # -- reading the store (any thread) --------------------------------------------------------------------

    def get(self, key: str) -> JSON | None:
        with self._lock:
            return self._store.get(key)

    def items(self) -> list[JSON]:
        with self._lock:
            return list(self._store.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    # -- lifecycle -----------------------------------------------------------------------------------------

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
                    self._relist()
                started = time.monotonic()
                events = self._watch(stopped)
                if not events and time.monotonic() - started < 1.0 and not stopped():
                    # A watch that ends at once without a single event (a server shutting down, a proxy cutting
                    # streams) must not turn into a reconnect loop at full speed.
                    self._sleep(stop, self.backoff.next())
            except KubeError as exc:
                if stopped():
                    break
                if exc.status == 410:
                    log.info("resource version expired; relisting", extra={"resource": self.name})
                    self.resource_version = None
                    continue
                self._count_error()
                delay = self.backoff.next()
                log.warning(
                    "list/watch failed; retrying",
                    extra={"resource": self.name, "error": str(exc), "retry_in": round(delay, 2)},
                )
                self._sleep(stop, delay)
            except Exception:
                if stopped():
                    break
                self._count_error()
                log.exception("list/watch crashed; retrying", extra={"resource": self.name})
                self._sleep(stop, self.backoff.next())

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

    def _relist(self) -> None:
        items: list[JSON] = []
        query: dict[str, Any] = {k: v for k, v in self.selectors.items() if v}
        query["limit"] = self.page_size
        while True:
            page = self.kube.get(self.path, query)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                version = str(meta.get("resourceVersion") or "")
                break
            query["continue"] = token
        fresh: dict[str, JSON] = {}
        for item in items:
            obj = self.transform(item) if self.transform else item
            fresh[object_key(obj)] = obj
        with self._lock:
            old = self._store
            self._store = fresh
        self.resource_version = version
        self.relists += 1
        self.backoff.reset()
        log.debug("listed", extra={"resource": self.name, "count": len(fresh), "resourceVersion": version})
        if self.on_event is not None:
            for key, obj in old.items():
                if key not in fresh:
                    self._dispatch("DELETED", obj, obj)
            for key, obj in fresh.items():
                previous = old.get(key)
                if previous is None:
                    self._dispatch("ADDED", obj, None)
                elif _version(previous) != _version(obj):
                    self._dispatch("MODIFIED", obj, previous)
        if not self.synced.is_set():
            self.synced.set()
            if self.on_synced is not None:
                self.on_synced()

    # -- watch ---------------------------------------------------------------------------------------------

    def _watch(self, stopped: Callable[[], bool]) -> int:
        """One watch request, until it ends; the number of events it delivered."""
        timeout = random.randint(self.watch_timeout, 2 * self.watch_timeout)
        query: dict[str, Any] = {k: v for k, v in self.selectors.items() if v}
        query.update(resourceVersion=self.resource_version, allowWatchBookmarks=True, timeoutSeconds=timeout)
        stream = self.kube.watch(self.path, query, read_timeout=timeout + 30)
        self._stream = stream
        if self._failing:
            # The API server answers again: tell whoever postponed work because of the outage.
            self._failing = False
            log.info("watch resumed", extra={"resource": self.name, "resourceVersion": self.resource_version})
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
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            raise KubeError(code or 500, str(obj.get("reason") or "watch error"), obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            if version:
                self.resource_version = str(version)
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            log.warning("unknown watch event", extra={"resource": self.name, "type": kind})
            return
        if self.transform:
            obj = self.transform(obj)
        key = object_key(obj)
        with self._lock:
            old = self._store.get(key)
            if kind == "DELETED":
                self._store.pop(key, None)
            else:
                self._store[key] = obj
        if version:
            self.resource_version = str(version)
        self._dispatch(str(kind), obj, old)

    def _dispatch(self, kind: str, obj: JSON, old: JSON | None) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, obj, old)
        except Exception:  # a handler bug must not stop the watch (and with it every other pod's handling)
            log.exception("event handler failed", extra={"resource": self.name, "object": object_key(obj)})


def _version(obj: JSON) -> str | None:
    meta = obj.get("metadata") or {}
    version = meta.get("resourceVersion")
    return str(version) if version is not None else None
