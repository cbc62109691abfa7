"""The standalone node agent: object files in, BGP sessions and plan consumers out.

The driver of the node pipeline (``docs/pipeline.md``): it loads the object files (only changed
files are read again) into a :class:`~vipcast.core.pipeline.Snapshot`, plans this node's
:class:`~vipcast.core.desired.NodePlan` from it and from what the node observes
(:meth:`Agent.observe` re-plans from memory), keeps BGP sessions to the peers the plan names,
and hands every new plan to each consumer (the BGP speaker first; the data plane, health
checker, L2 and BFD plug in as further :class:`PlanConsumer` s). It reloads on SIGHUP and when a
file changes (inotify, or polling); a new config is validated whole and refused whole (the
running one stays). It serves /metrics and /status on a local address.

Graceful restart (RFC 4724, restarting side): a marker file in the state directory exists
while the agent runs. If it is found at start, the previous agent did not stop cleanly (for
example ``kill -9``), so this process sets the Restart State bit in its OPENs; the plan is
computed and given to every session *before* the sessions start, so the initial table is
complete when End-of-RIB is sent.

With ``--cache-dir``, a start on the files an earlier start cached takes its snapshot from
:mod:`vipcast.app.start_cache`. The first plan's routes may go to BGP before the first load
ends (with or without that cache): :mod:`~vipcast.app.agent_start`. Values:
:mod:`~vipcast.app.agent_values`; GC pauses: :mod:`~vipcast.app.gc_pauses`.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from vipcast.app.agent_caches import CacheWriter
from vipcast.app.agent_start import StartFlow
from vipcast.app.agent_values import (
    AgentOptions,
    Desired,
    PlanConsumer,
    Planner,
    default_planner,
    issues_table,
    peer_settings,
    status_document,
    to_peer_settings,
)
from vipcast.app.gc_pauses import RELEASE_STEP, desired_parts, release_gradually, run_planner
from vipcast.app.start_cache import StartCache
from vipcast.app.start_early import MARKER, EarlyStart, agent_speaker
from vipcast.core.desired import NodeIdentity, NodePlan
from vipcast.core.drain import Phase, apply_drain
from vipcast.core.gateway.address import GatewayServices, gateway_addresses
from vipcast.core.incremental import NodePlanner
from vipcast.core.pipeline import Local, Snapshot, snapshot
from vipcast.core.pipeline import plan as pipeline_plan
from vipcast.core.pipeline import servable_now as pipeline_servable_now
from vipcast.obs.bgp_metrics import register_bgp_metrics
from vipcast.obs.registry import CollectorRegistry
from vipcast.obs.status_server import StatusServer
from vipcast.runtime.clock import LoopClock
from vipcast.runtime.loop_watch import watch_loop
from vipcast.runtime.weight_pacer import WeightPacer
from vipcast.sources.early_parse import EarlyParse
from vipcast.sources.files import ObjectFiles, watch
from vipcast.sources.validated_cache import ValidatedCache
from vipcast.spec.errors import Issue, SpecError
from vipcast.spec.load import Spec

__all__ = [  # the agent's values live in agent_values and gc_pauses; importers use either
    "MARKER", "RELEASE_STEP", "Agent", "AgentOptions", "Desired", "PlanConsumer", "Planner",
    "default_planner", "desired_parts", "issues_table", "peer_settings", "release_gradually",
    "run_planner", "to_peer_settings",
]


class Agent(StartFlow):
    """One node's agent: the pipeline's driver, speaker, consumers, status endpoint.

    The source (the object files here; the API server in the Kubernetes speaker, which
    overrides :meth:`load_spec`) gives a whole validated :class:`Spec`; the planner makes its
    :class:`~vipcast.core.pipeline.Snapshot`; :meth:`observe` hands in what the node sees
    (health, verification, membership) and the agent re-plans from the snapshot in memory
    (:func:`vipcast.core.pipeline.plan`) and hands the one plan to the speaker and every
    consumer. Nothing is read again unless the source changed.
    """

    def __init__(
        self,
        options: AgentOptions,
        *,
        planner: Planner = default_planner,
        consumers: Sequence[PlanConsumer] = (),
        registry: CollectorRegistry | None = None,
        log: logging.Logger | None = None,
        local: Local | None = None,
        early: EarlyStart | None = None,
        parsing: EarlyParse | None = None,
    ) -> None:
        self.options = options
        # the files' planner remembers its last config: a few changed Services are planned alone
        self._planner: Planner = NodePlanner() if planner is default_planner else planner
        self._consumers = list(consumers)
        self._gateway_services = GatewayServices()
        self._status_sections: dict[str, Callable[[], Any]] = {}
        self.registry = registry or CollectorRegistry()
        self._log = log or logging.getLogger("vipcast.agent")
        #: the speaker (and open start cache) of vipcast.app.start_early, when that ran first
        self._early = early
        if early is not None:
            self._rng, self.speaker = early.rng, early.speaker
        else:
            self._rng, self.speaker = agent_speaker(options.listen, options.seed, self._log)
        register_bgp_metrics(self.registry, self.speaker.status)
        self._status_server = StatusServer(self.registry, self.status_document,
                                           ready=lambda: self.started.is_set())
        self.files = ObjectFiles(
            options.config_paths,
            cache=ValidatedCache(options.cache_dir) if options.cache_dir is not None else None,
            early=parsing,  # the files as parsed while the agent was imported, if they were
        )
        #: the whole start on disk (the file agent with --cache-dir and the files' planner)
        #: the config comes from the object files (not an agent that overrides the source)
        self._reads_files = type(self).load_spec is Agent.load_spec
        self.start_cache = (
            StartCache(options.cache_dir, options.node)
            if options.cache_dir is not None and isinstance(self._planner, NodePlanner)
            and self._reads_files else None
        )
        self.current: Desired | None = None
        #: what the node observes now (the planner's input besides the config)
        self.local = local or Local()
        #: the drain state machine's phase (core.drain), set by the DrainDriver
        self.drain_phase = Phase.ANNOUNCE
        self.drain_state = "serving"
        #: holds weight changes to one per interval per route (runtime/weight_pacer.py)
        self.pacer = WeightPacer(LoopClock(), self._weights_due, options.weight_interval)
        self._repace: asyncio.Task[None] | None = None
        #: called (synchronously, must not await the agent) when a new config is published
        self.config_watchers: list[Callable[[], None]] = []
        self.last_error: list[Issue] = []
        self.restarting = False
        self._reload = asyncio.Event()
        self._files_hint = asyncio.Event()
        self._stop = asyncio.Event()
        self._publishing = asyncio.Lock()
        #: the disk caches, and the lock every load holds (app/agent_caches.py)
        self.caches = CacheWriter(self.files, self.start_cache, in_thread=options.load_in_thread,
                                  quiet=options.cache_quiet)
        self.started = asyncio.Event()
        self.metrics_bound: tuple[str, int] | None = None
        #: awaited with the first plan before the BGP sessions start (the node's data plane
        #: and verification, so the first UPDATEs carry every servable route)
        self.prime: Callable[[NodePlan], Awaitable[None]] | None = None
        self._first_routes = None
        self._announced_early = False

    def proxy_refused(self, refused: Mapping[str, tuple[str, str]]) -> None:
        """What the node's Envoy refuses now (xDS type -> (version, Envoy's message)); the
        gateway section of /status shows it. The Kubernetes speaker also reports it."""

    # ---- configuration --------------------------------------------------------------------

    def identity(self) -> NodeIdentity:
        return NodeIdentity(self.options.node, self.options.router_id, self.restarting)

    def load_spec(self) -> Spec:
        """The source's whole config (the object files; only changed files are read again);
        raises SpecError."""
        return self.files.load()

    def load(self) -> Desired:
        """Read, validate and plan the config; raises SpecError (nothing is changed).
        The first load takes the start cache's snapshot when it is that of these files."""
        if self.current is None and self.start_cache is not None:
            restored = self.start_cache.restore(self.files, self.identity())
            if restored is not None:
                self.files.drop_early()  # the files' documents are not needed
                self._planner = restored.planner
                self._gateway_services = restored.gateways
                return self._desired(restored.snapshot)
        spec = self._gateway_services(self.load_spec())  # a Gateway's VIP: a stand-in Service
        hand_on = self._first_routes if self.current is None else None
        if hand_on is not None and isinstance(self._planner, NodePlanner):
            # the first plan's routes go out once the Services are allocated, before the
            # node's duties (NAT rules, L2), the planner's memory and the rest of the snapshot
            # are made (core/first_routes.py: the plan's very routes; the speaker sees no
            # change when the whole plan follows)
            duties = self._first_duties(spec, hand_on)
            self._planner.settle()
        else:
            duties = run_planner(self._planner, spec, self.options.node)
        current = self.current
        changed = getattr(self._planner, "last_changed", None)
        previous = current.snapshot if current is not None and changed is not None else None
        # only Gateways (and the Gateway standing for Ingresses) have stand-in Services (no
        # need to look through 10,000 keys without)
        allocated = (gateway_addresses(getattr(self._planner, "assignments", {}))
                     if spec.gateways or spec.ingresses else {})
        snap = snapshot(spec, duties, self.identity(), previous, changed, allocated)
        for service, problem in snap.health_problems:
            # the controller reports it on the Service (condition); not logged per load
            self._log.debug("%s: default health check instead: %s", service, problem)
        return self._desired(snap)

    def _desired(self, snap: Snapshot) -> Desired:
        plan = apply_drain(pipeline_plan(snap, self.local), self.drain_phase)
        peers = tuple(to_peer_settings(s) for s in plan.peers)
        return Desired(spec=snap.spec, plan=plan, peers=peers, files=dict(self.files.stamps),
                       snapshot=snap)

    async def _load(self) -> Desired:
        if not self.options.load_in_thread:
            return self.load()
        # The cyclic GC holds the GIL for hundreds of milliseconds per pass over the millions
        # of objects a big parse makes, starving the loop thread (BFD timers) as surely as
        # running on it; pause it meanwhile, and afterwards freeze what was built: the new
        # objects leave the collector's generations (no collection traces them again; the
        # acyclic ones are still freed by reference counting, see reload). Without the
        # freeze, the first young collection after the pause traces everything the load
        # made, on the loop thread.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return await asyncio.to_thread(self.load)
        finally:
            gc.freeze()
            if was_enabled:
                gc.enable()

    async def reload(self) -> bool:
        """Validate the config whole and swap it in; on error keep the running one."""
        try:
            async with self.caches.loading():
                desired = await self._load()
        except SpecError as exc:
            self.last_error = list(exc.issues)
            self._log.error(
                "configuration refused, keeping the running one:\n%s", issues_table(exc.issues)
            )
            return False
        self.last_error = []
        old = self.current
        # observations may have changed while the load ran: plan with the newest
        await self._publish(self._desired(desired.snapshot) if desired.snapshot else desired)
        del desired
        if old is not None and self.options.load_in_thread:
            # free the replaced config off the loop and a little at a time: these are the
            # last references to it (the consumers hold the new plan now)
            parts = desired_parts(old)
            del old
            await asyncio.to_thread(release_gradually, parts)
        return True  # its newly validated files are written once the config is quiet

    async def _announced(self, limit: float = 30.0) -> None:
        """Until every peer has the first plan's routes (or ``limit`` seconds)."""
        wanted: dict[str, int] = {}  # routes per peer
        for route in self.current.plan.bgp if self.current is not None else ():
            for peer in route.peers:
                wanted[peer] = wanted.get(peer, 0) + 1
        await self.speaker.wait_for(
            lambda speaker: all(p.state == "Established"
                                and p.prefixes_advertised >= wanted.get(p.name, 0)
                                for p in speaker.status()),
            timeout=limit,
        )

    async def observe(self, local: Local) -> None:
        """What the node observes changed (health, verification, membership): re-plan from the
        snapshot in memory and hand the plan on. No file is read."""
        if local == self.local:
            return
        self.local = local
        current = self.current
        if current is None or current.snapshot is None:
            return  # the first load plans with it
        await self._publish(self._desired(current.snapshot))

    def drain_inputs(self) -> tuple[Spec, NodePlan] | None:
        """The config and the undrained plan base the drain driver looks at (None: none yet)."""
        current = self.current
        if current is None or current.snapshot is None:
            return None
        return current.spec, current.snapshot.plan_base

    def servable_now(self) -> frozenset[str] | None:
        """The services the plan may announce now (see :func:`core.pipeline.servable_now`)."""
        current = self.current
        if current is None or current.snapshot is None:
            return self.local.servable
        return pipeline_servable_now(current.snapshot, self.local)

    async def set_drain(self, phase: Phase, state: str) -> None:
        """The drain state machine moved (an observation like :meth:`observe`): re-plan."""
        self.drain_state = state
        if phase is self.drain_phase:
            return
        self.drain_phase = phase
        current = self.current
        if current is None or current.snapshot is None:
            return  # the first load plans with it
        await self._publish(self._desired(current.snapshot))

    async def _withdraw_all(self) -> None:
        """On stop, before the Cease: withdraw every route in UPDATEs of their own, so a
        router drops the paths by the withdrawal even where it would keep them on a session
        end (graceful restart's stale paths). The UPDATE is written before the NOTIFICATION
        on the same connection, so the router reads it first."""
        current = self.current
        if current is None or not current.plan.bgp:
            return
        self._log.info("stopping: withdrawing %d route(s)", len(current.plan.bgp))
        async with self._publishing:
            await self.speaker.apply(replace(current.plan, bgp=(), bgp_delta=None))

    def _weights_due(self) -> None:
        """A held weight is due (the pacer's timer): plan again from memory."""
        if self._repace is None or self._repace.done():
            self._repace = asyncio.get_running_loop().create_task(self._republish())

    async def _republish(self) -> None:
        current = self.current
        if current is not None and current.snapshot is not None:
            await self._publish(self._desired(current.snapshot))

    async def _publish(self, desired: Desired) -> None:
        """Make ``desired`` the running config and hand its plan to the speaker and every
        consumer (each applies the difference itself)."""
        async with self._publishing:
            paced = self.pacer.pace(desired.plan)
            if paced is not desired.plan:
                desired = replace(desired, plan=paced)
            old = self.current
            self.current = desired
            if old is None or old.snapshot is not desired.snapshot:
                self.caches.new_config()
                for watcher in self.config_watchers:
                    watcher()  # a new config (the drain driver looks at the Node object)
            if old is not None and old.plan == desired.plan:
                if old.snapshot is not desired.snapshot:
                    # the same plan, new objects: what the node withholds (and why) may have
                    # changed, e.g. a Service committed to status that it does not announce
                    self.published(desired.plan)
                return
            plan = desired.plan
            await self.speaker.apply(plan)  # routes first: sessions start with a full table
            if old is None or old.plan.peers != plan.peers:
                changes = self.speaker.configure(desired.peers)
                if changes:
                    self._log.info("peers: %s", ", ".join(changes))
            if old is None or old.snapshot is not desired.snapshot:
                self._log.info(
                    "plan for %s: %d BGP routes, %d L2, %d NAT rules",
                    plan.node, len(plan.bgp), len(plan.l2), len(plan.nat),
                )
            for consumer in self._consumers:
                try:
                    await consumer.apply(plan)
                except Exception:
                    self._log.exception("plan consumer %r failed", consumer)
            self.published(plan)

    def published(self, plan: NodePlan) -> None:
        """Called after every plan was handed on (the Kubernetes speaker reports it)."""

    def add_consumer(self, consumer: PlanConsumer) -> None:
        """One more plan consumer (wired after construction, e.g. one that needs the agent)."""
        self._consumers.append(consumer)

    def request_reload(self) -> None:
        self._reload.set()

    def request_stop(self) -> None:
        self._stop.set()

    # ---- running --------------------------------------------------------------------------

    def _marker(self) -> Path | None:
        return None if self.options.state_dir is None else self.options.state_dir / MARKER

    async def run(self, install_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT or :meth:`request_stop`; returns the exit code."""
        marker = self._marker()
        if marker is not None:
            marker.parent.mkdir(parents=True, exist_ok=True)
            self.restarting = marker.exists()
            marker.write_text(str(os.getpid()))
        loop = asyncio.get_running_loop()
        if install_signals:  # before any route is out: a SIGHUP then must not end the process
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            for sig in self._early.signals if self._early is not None else ():
                # held by the early start until now
                (self.request_reload if sig == signal.SIGHUP else self.request_stop)()
        await self._announce_early()
        try:
            first = await self._load_first()
        except SpecError as exc:
            self._log.error("configuration invalid:\n%s", issues_table(exc.issues))
            if self._announced_early:
                await self.speaker.stop("vipcast agent stopping")
            if install_signals:
                for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            if marker is not None:
                marker.unlink(missing_ok=True)
            return 2
        if self.restarting:
            self._log.info("previous agent did not stop cleanly: graceful restart (R-bit set)")
        watcher: asyncio.Task[None] | None = None
        saver: asyncio.Task[None] | None = None
        serving: asyncio.Task[None] | None = None
        stalls = asyncio.create_task(watch_loop(), name="loop-watch")
        try:
            if self.options.metrics_address is not None:  # a busy port fails before announcing
                self.metrics_bound = self._status_server.bind(*self.options.metrics_address)
            if self.prime is not None:
                await self.prime(first.plan)  # may observe(): planned again just below
            if not self._announced_early:
                await self.speaker.start()
            assert first.snapshot is not None
            await self._publish(self._desired(first.snapshot))
            del first  # the reload that replaces it frees it (off the loop when in a thread)
            # from here on a change (SIGHUP, a file, an observation) is planned at once: the
            # status server and the disk caches are not needed for it and do not hold it up
            watcher = self._start_watching()
            serving = asyncio.create_task(self._serve_status(), name="status-server")
            serving.add_done_callback(self._status_failed)
            saver = asyncio.create_task(
                self.caches.run(self._announced,
                                lambda: (self.current, self._planner, self._gateway_services,
                                         self.identity())),
                name="save-caches")
            await self._watch()
            if serving.done() and not serving.cancelled() and serving.exception() is not None:
                raise serving.exception()  # type: ignore[misc]
        finally:
            for task in (watcher, saver, serving, stalls):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            self.pacer.stop()
            if self._repace is not None:
                self._repace.cancel()
                await asyncio.gather(self._repace, return_exceptions=True)
            await self._withdraw_all()
            self._log.info("stopping: Cease/Administrative Shutdown to every peer")
            await self.speaker.stop("vipcast agent stopping")
            await self._status_server.stop()
            if install_signals:
                for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            if marker is not None:
                marker.unlink(missing_ok=True)
        return 0

    async def _serve_status(self) -> None:
        """Serve /status and /metrics (after the first plan was handed on: the HTTP stack is
        imported in a thread, the loop keeps sending the first UPDATEs and serving reloads
        meanwhile), then the agent is started (ready)."""
        if self.options.metrics_address is not None:
            await asyncio.to_thread(importlib.import_module, "aiohttp.web")
            self.metrics_bound = await self._status_server.start()
            self._log.info("status on http://%s:%s/status", *self.metrics_bound)
        self.started.set()

    def _status_failed(self, task: asyncio.Task[None]) -> None:
        """The status server could not start: the agent stops (run() raises its error)."""
        if not task.cancelled() and task.exception() is not None:
            self.request_stop()

    def _start_watching(self) -> asyncio.Task[None] | None:
        """Watch the object files (inotify, or polling): a change asks for a reload."""
        if not self.options.config_paths:
            return None

        async def changed() -> None:
            self._files_hint.set()  # looked at when no reload runs (see _watch)

        return asyncio.create_task(
            watch(self.options.config_paths, changed, poll_interval=self.options.poll_interval),
            name="watch-object-files",
        )

    async def _watch(self) -> None:
        while not self._stop.is_set():
            waiters = [
                asyncio.ensure_future(self._stop.wait()),
                asyncio.ensure_future(self._reload.wait()),
                asyncio.ensure_future(self._files_hint.wait()),
            ]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)
            if self._stop.is_set():
                return
            if self._reload.is_set():
                self._reload.clear()
                self._files_hint.clear()
                self._log.info("reload requested")
                await self.reload()
            elif self._files_hint.is_set():
                self._files_hint.clear()
                if self.files.changed():  # the stamps the last load saw, refused or not
                    self._log.info("object files changed: reloading")
                    await self.reload()

    # ---- status ---------------------------------------------------------------------------

    def add_status_section(self, name: str, section: Callable[[], Any]) -> None:
        """One more top-level key of /status (BFD sessions, L2 owners, data plane, ...)."""
        self._status_sections[name] = section

    def status_document(self) -> dict[str, Any]:
        return status_document(self.options.node, self.restarting, self.drain_state,
                               self.current, self.last_error, self.speaker.status(),
                               {name: section() for name, section in
                                self._status_sections.items()})
