"""Watches of exactly the Secrets named, one each (``fieldSelector=metadata.name=``), started
and stopped as the set of names changes.

The L7 gateway's certificates live in Secrets of any namespace; the controller and the
speakers must not mirror every Secret of the cluster to find them. :meth:`NamedSecrets.want`
is given the Secrets the Gateways and Ingresses of ours name and may name
(:func:`vipcast.core.gateway.certificates.certificate_refs`) and keeps one reflector per
Secret. It may be called from any thread (a speaker may load its config off the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from lightkube.resources.core_v1 import Secret

from vipcast.sources.kube.client import AsyncClient
from vipcast.sources.kube.reflector import Reflector
from vipcast.sources.kube.resources import Watched

log = logging.getLogger(__name__)


class NamedSecrets:
    """One reflector per wanted Secret ``(namespace, name)``; ``on_change`` when any changes."""

    def __init__(self, client: AsyncClient, on_change: Callable[[], None]) -> None:
        self.client = client
        self.on_change = on_change
        self._running: dict[tuple[str, str], tuple[Reflector, asyncio.Task[None]]] = {}
        self._wanted: frozenset[tuple[str, str]] = frozenset()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the reflectors run on (call from it before :meth:`want`)."""
        self._loop = loop

    @property
    def reflectors(self) -> list[Reflector]:
        return [r for r, _ in self._running.values()]

    @property
    def synced(self) -> bool:
        """Every wanted Secret listed once (found or not)."""
        return all(key in self._running and self._running[key][0].synced.is_set()
                   for key in self._wanted)

    def want(self, refs: Iterable[tuple[str, str]]) -> bool:
        """Watch exactly ``refs`` from now on; True when that changes what is watched."""
        wanted = frozenset(refs)
        if wanted == self._wanted:
            return False
        self._wanted = wanted
        loop = self._loop
        if loop is None:
            raise RuntimeError("NamedSecrets.want before bind()")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._apply()
        else:
            loop.call_soon_threadsafe(self._apply)
        return True

    def _apply(self) -> None:
        wanted = self._wanted
        for key in sorted(set(self._running) - wanted):
            reflector, task = self._running.pop(key)
            task.cancel()
            log.info("no longer watching Secret %s/%s", *key)
        for ns, name in sorted(wanted - set(self._running)):
            reflector = Reflector(self.client, Watched("Secret", Secret, namespaced=True,
                                                       namespace=ns, name=name), self.on_change)
            task = asyncio.get_running_loop().create_task(reflector.run(),
                                                          name=f"secret-{ns}/{name}")
            self._running[(ns, name)] = (reflector, task)
            log.info("watching Secret %s/%s (a certificate of the L7 gateway)", ns, name)
        self.on_change()  # a Secret no longer watched is gone from the snapshot

    async def close(self) -> None:
        tasks = [task for _, task in self._running.values()]
        self._running.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
