"""A reflector: list, then watch from the list's resourceVersion, relist on 410, back off.

It keeps an in-memory store of one kind's objects (as plain dicts, keyed ``ns/name`` or
``name``) and calls ``on_change`` after every change it applies, so the caller can run a
level-triggered reconcile on a snapshot of all stores.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from contextlib import aclosing
from typing import Any

import httpx2 as httpx
from lightkube import ALL_NS, ApiError, AsyncClient

from vipcast.core.backoff import Backoff
from vipcast.sources.kube.resources import Watched
from vipcast.spec.documents import JSON

log = logging.getLogger(__name__)



def object_key(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def snapshots(reflectors: Iterable[Reflector]) -> dict[str, list[JSON]]:
    """``kind -> objects`` over every reflector (several may mirror one kind: named Secrets)."""
    out: dict[str, list[JSON]] = {}
    for r in reflectors:
        out.setdefault(r.kind, []).extend(r.snapshot())
    return out


class Reflector:
    """Mirror of one kind in memory, kept current by list + watch."""

    def __init__(
        self,
        client: AsyncClient,
        watched: Watched,
        on_change: Callable[[], None],
        *,
        watch_timeout: int = 290,
        backoff: Backoff | None = None,
        seed: int | None = None,
        slim: bool = True,
    ) -> None:
        self.client = client
        self.watched = watched
        self.on_change = on_change
        self.watch_timeout = watch_timeout
        self.backoff = backoff or Backoff(base=0.5, cap=30.0, jitter=0.2, rng=random.Random(seed))
        #: drop ``metadata.managedFields`` before storing (nothing reads it; with server-side
        #: apply it is often the largest part of a Service): see docs/scale.md
        self.slim = slim
        self.store: dict[str, JSON] = {}
        self.synced = asyncio.Event()
        self.resource_version: str | None = None
        #: counters for tests and metrics
        self.lists = 0
        self.gone = 0
        self.errors = 0

    @property
    def kind(self) -> str:
        return self.watched.kind

    def snapshot(self) -> list[JSON]:
        return list(self.store.values())

    async def run(self) -> None:
        """List and watch forever (cancel to stop)."""
        while True:
            try:
                await self._list()
                self.backoff.reset()
                await self._watch()
            except ApiError as exc:
                if exc.status.code == 410:
                    self.gone += 1
                    log.info("%s: resourceVersion %s expired, relisting", self.kind,
                             self.resource_version)
                    continue
                await self._pause(f"API error {exc.status.code}: {exc.status.message}")
            except (httpx.HTTPError, OSError) as exc:
                await self._pause(f"{type(exc).__name__}: {exc}")

    async def _pause(self, why: str) -> None:
        self.errors += 1
        delay = self.backoff.next_delay()
        log.warning("%s: %s; retrying in %.1fs", self.kind, why, delay)
        await asyncio.sleep(delay)

    def _ns(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.watched.namespaced:
            out["namespace"] = self.watched.namespace or ALL_NS
        if self.watched.name is not None:
            out["fields"] = {"metadata.name": self.watched.name}
        if self.watched.labels is not None:
            out["labels"] = list(self.watched.labels)
        return out

    def _keep(self, obj: Any) -> JSON:
        data: JSON = obj.to_dict()
        if self.slim:
            managed = (data.get("metadata") or {}).pop("managedFields", None)
            if self.watched.status_owners and managed:
                data["metadata"]["managedFields"] = [
                    {"manager": m.get("manager"), "subresource": "status",
                     "fieldsV1": m.get("fieldsV1")}
                    for m in managed if m.get("subresource") == "status"]
        return data

    async def _list(self) -> None:
        listing = self.client.list(self.watched.resource, chunk_size=500, **self._ns())
        fresh: dict[str, JSON] = {}
        async for obj in listing:
            data = self._keep(obj)
            fresh[object_key(data)] = data
        self.lists += 1
        self.resource_version = listing.resourceVersion
        changed = fresh != self.store
        self.store = fresh
        first = not self.synced.is_set()
        self.synced.set()
        if changed or first:
            self.on_change()

    async def _watch(self) -> None:
        stream = self.client.watch(self.watched.resource, resource_version=self.resource_version,
                                   server_timeout=self.watch_timeout, **self._ns())
        async with aclosing(stream):  # type: ignore[type-var]
            async for event_type, obj in stream:
                data = self._keep(obj)
                rv = (data.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.resource_version = rv
                key = object_key(data)
                if event_type == "DELETED":
                    self.store.pop(key, None)
                elif event_type in ("ADDED", "MODIFIED"):
                    self.store[key] = data
                else:
                    continue
                self.on_change()
