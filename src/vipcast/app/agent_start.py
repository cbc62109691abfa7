"""The agent's start path: the first plan's routes and BGP sessions go to the speaker before
the first load ends, where the first plan is the snapshot's as is (docs/pipeline.md,
"Start-up"). With the start cache they are its first record (:meth:`StartCache.early`);
without it the load's worker thread hands them on as soon as the Services are allocated
(:func:`vipcast.core.first_routes.first_routes`: the routes alone, before the node's NAT rules,
L2 duties and the rest of the snapshot), and waits until they are out before it goes on.
Either way the whole plan published next holds
the very same route tuple and equal sessions: the speaker sees no change.

Mixed into :class:`vipcast.app.agent.Agent` (which owns every attribute named below).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from vipcast.app.agent_values import AgentOptions, Desired, Planner, to_peer_settings
from vipcast.app.gc_pauses import run_planner
from vipcast.app.start_cache import StartCache
from vipcast.app.start_early import EARLY_WAIT, Early, EarlyStart, routes_done
from vipcast.core.desired import NodeIdentity, NodePlan
from vipcast.core.drain import Phase
from vipcast.core.first_routes import first_routes
from vipcast.core.incremental import NodePlanner
from vipcast.core.pipeline import Local
from vipcast.core.pipeline import first_routes as duties_routes
from vipcast.runtime.bgp.speaker import Speaker
from vipcast.spec.load import Spec


class StartFlow:
    """The start path of :class:`~vipcast.app.agent.Agent` (see the module)."""

    options: AgentOptions
    speaker: Speaker
    start_cache: StartCache | None
    prime: Callable[[NodePlan], Awaitable[None]] | None
    local: Local
    drain_phase: Phase
    _planner: Planner
    _early: EarlyStart | None
    _log: logging.Logger
    _reads_files: bool
    #: during the first load without the start cache: takes the first plan's routes and
    #: sessions (from the load's worker thread) as soon as the duties are planned
    _first_routes: Callable[[Early], None] | None = None
    #: the speaker got routes and sessions before the first load ended
    _announced_early: bool = False
    #: seconds the first load's thread waits for its first routes to be out
    first_routes_wait: float = EARLY_WAIT

    def identity(self) -> NodeIdentity:
        raise NotImplementedError  # the agent's

    async def _load(self) -> Desired:
        raise NotImplementedError  # the agent's

    def _first_duties(self, spec: Spec, hand_on: Callable[[Early], None]) -> NodePlan:
        """The first load's duties, its routes handed on as soon as they are known: from the
        allocation alone (:func:`vipcast.core.first_routes.first_routes`), else (the rare
        config whose routes need the whole plan) from the duties."""
        assert isinstance(self._planner, NodePlanner)
        identity = self.identity()
        handed: list[Early] = []

        def assigned(assignments: Mapping[str, tuple[str, ...]]) -> None:
            early = first_routes(spec, assignments, identity)
            if early is not None:
                handed.append(Early(*early))
                hand_on(handed[0])

        planner = self._planner
        duties = run_planner(lambda s, node: planner.first(s, node, assigned), spec,
                             self.options.node)
        if not handed:
            early = duties_routes(spec, duties, identity)
            if early is not None:
                hand_on(Early(*early))
        elif duties.bgp == handed[0].bgp:
            # the very tuple the speaker holds: nothing to compare when the whole plan follows
            duties = replace(duties, bgp=handed[0].bgp)
        return duties

    def _first_plan_as_is(self) -> bool:
        """Whether the first plan is the snapshot's as is (no observation, priming or drain):
        then its routes and sessions may go to the speaker before the load ends."""
        return (self.prime is None and self.local == Local()
                and self.drain_phase is Phase.ANNOUNCE)

    async def _announce_early(self) -> None:
        """With a start cache of these files: hand its first plan's routes and sessions to the
        speaker before the rest of the cache is read (the sessions open and the UPDATEs go out
        meanwhile; the plan of the whole snapshot, published next, is the same value)."""
        cache = self.start_cache
        started = self._early
        if started is not None:  # vipcast.app.start_early tried the cache before the agent
            if started.reading is not None and started.early is not None:
                # its speaker runs with the first routes; the load goes on reading the file
                self._announced_early = True
                if cache is not None:
                    cache.adopt(started.reading)
                else:
                    started.reading.handle.close()
            return
        if cache is None or not self._first_plan_as_is():
            return
        early = await asyncio.to_thread(cache.early, self.options.config_paths, self.identity())
        if early is not None:
            await self._hand_early(early, "start cache")

    async def _hand_early(self, early: Early, source: str) -> None:
        """The first plan's routes and sessions to the speaker, ahead of the first load."""
        await self.speaker.start()
        await self.speaker.apply(NodePlan(node=self.options.node, bgp=early.bgp,
                                          peers=early.peers))
        changes = self.speaker.configure([to_peer_settings(s) for s in early.peers])
        self._announced_early = True
        self._log.info("peers (%s): %s", source, ", ".join(changes) or "none")

    async def _load_first(self) -> Desired:
        """The first load. Without the start cache's routes, in a worker thread, on the files'
        planner: the first plan's routes and sessions go to the speaker as soon as the duties
        are planned (:func:`vipcast.core.pipeline.first_routes`), while the load makes the
        planner's memory and the rest of the snapshot (health targets, BFD, L2 and liveness
        members, the proxy model); the whole plan, published next, holds the same routes.
        The load's thread waits meanwhile until those routes are out (or
        :data:`~vipcast.app.start_early.EARLY_WAIT` seconds), as the start cache's early start
        does: the rest of the load (tenths of a second of CPU) would otherwise hold the
        interpreter while the loop opens the sessions and encodes the UPDATEs."""
        if (self._announced_early or not self.options.load_in_thread
                or not self._first_plan_as_is() or not isinstance(self._planner, NodePlanner)
                or not self._reads_files):
            return await self._load()
        loop = asyncio.get_running_loop()
        routes: asyncio.Future[Early] = loop.create_future()

        def deliver(early: Early) -> None:  # on the loop
            if not routes.done():
                routes.set_result(early)

        out = threading.Event()  # set once the routes are out (or given up on)

        def hand_on(early: Early) -> None:  # in the load's thread
            loop.call_soon_threadsafe(deliver, early)
            out.wait(2 * self.first_routes_wait)  # bounded even if the loop never answers

        self._first_routes = hand_on
        loading = asyncio.ensure_future(self._load())
        try:
            await asyncio.wait((routes, loading), return_when=asyncio.FIRST_COMPLETED)
            if routes.done() and (not loading.done() or loading.exception() is None):
                early = routes.result()
                try:
                    await self._hand_early(early, "first routes")
                    await self.speaker.wait_for(routes_done(early.bgp),
                                                timeout=self.first_routes_wait)
                finally:
                    out.set()
            return await loading
        finally:
            out.set()
            self._first_routes = None
            if not loading.done():
                loading.cancel()
                await asyncio.gather(loading, return_exceptions=True)
            routes.cancel()
