"""When the agent writes its disk caches: the validated files (:mod:`vipcast.sources.
validated_cache`) and the whole start (:mod:`vipcast.app.start_cache`), each time a new config
has run unchanged for a while (``quiet``, 5 s by default) once the first plan's routes are out.

Writing takes CPU (pickling 10,000 Services holds the GIL for tenths of a second), which the
first UPDATEs and a reload need: nothing is written before every peer has the first plan's
routes, nor while changes come in (the first Service added right after a start would share the
CPU with writing the files just read; measured: bench/README.md). The start cache holds the
incremental planner's memory, which a load updates in place: it is written with the load lock
held, and a reload that finds the lock held asks the writer to stop at its next chunk (nothing is
written then). A crash within ``quiet`` seconds of a change costs the next start the parse of
the changed files only.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

from vipcast.app.agent_values import Desired
from vipcast.app.start_cache import StartCache
from vipcast.core.desired import NodeIdentity
from vipcast.core.gateway.address import GatewayServices
from vipcast.core.incremental import NodePlanner
from vipcast.sources.files import ObjectFiles

#: (the running config, the planner, the Gateways' stand-ins, the node's identity) when the
#: start cache is written
Running = Callable[[], tuple[Desired | None, object, GatewayServices, NodeIdentity]]


class CacheWriter:
    """The agent's disk caches and the lock its loads hold (see the module)."""

    def __init__(self, files: ObjectFiles, start: StartCache | None, *, in_thread: bool,
                 quiet: float) -> None:
        self.files = files
        self.start = start
        self._in_thread = in_thread
        self._quiet = quiet
        self._loading = asyncio.Lock()
        self._abandon = threading.Event()
        self._new_config = asyncio.Event()

    @contextlib.asynccontextmanager
    async def loading(self) -> AsyncIterator[None]:
        """Held by a load: a start cache write in progress stops at its next chunk."""
        if self._loading.locked():
            self._abandon.set()
        async with self._loading:
            self._abandon.clear()
            yield

    def new_config(self) -> None:
        """A new config was published (the start cache waits until none came for a while)."""
        self._new_config.set()

    async def save_files(self) -> None:
        """Write newly validated files to the disk cache, after the plan was handed on."""
        if self.files.disk is None:
            return
        if self._in_thread:
            await asyncio.to_thread(self.files.save)
        else:
            self.files.save()

    async def run(self, announced: Callable[[], Awaitable[None]], running: Running) -> None:
        """Once ``announced()`` returns, whenever a new config ran unchanged for ``quiet``
        seconds: the newly validated files, then the start cache. Runs until cancelled."""
        if self.files.disk is None:
            return
        await announced()
        while True:
            await self._new_config.wait()
            self._new_config.clear()
            while True:  # until no new config for `quiet` seconds
                try:
                    async with asyncio.timeout(self._quiet):
                        await self._new_config.wait()
                except TimeoutError:
                    break
                self._new_config.clear()
            await self.save_files()
            await self.save_start(running)

    async def save_start(self, running: Running) -> bool:
        """Write the running config's start (its snapshot, the files it came from, the
        planner's memory), unless the start cache holds it already."""
        cache = self.start
        if cache is None:
            return False
        async with self._loading:  # no load updates the planner's memory meanwhile
            current, planner, gateways, identity = running()
            if (current is None or current.snapshot is None or current.snapshot is cache.holds
                    or current.files != self.files.stamps  # a refused load since
                    or not isinstance(planner, NodePlanner)):
                return False
            return await asyncio.to_thread(cache.save, self.files.state(), planner, gateways,
                                           current.snapshot, identity, self._abandon)
