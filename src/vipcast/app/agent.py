"""The standalone node agent: object files in, BGP sessions and plan consumers out.

This is the composition root of ``vipcast agent``: it loads the object files, computes this
node's :class:`~vipcast.core.desired.NodePlan`, keeps BGP sessions to the peers that select
this node, and hands every new plan to each consumer (the BGP speaker first; the data plane,
L2 and BFD runtimes plug in as further :class:`PlanConsumer` s). It reloads on SIGHUP and when
a file's mtime changes; a new config is validated whole and refused whole (the running one
stays). It serves /metrics and /status on a local address.

Graceful restart (RFC 4724, restarting side): a marker file in the state directory exists
while the agent runs. If it is found at start, the previous agent did not stop cleanly (for
example ``kill -9``), so this process sets the Restart State bit in its OPENs; the plan is
computed and given to every session *before* the sessions start, so the initial table is
complete when End-of-RIB is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import ipaddress
import logging
import os
import random
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.registry import CollectorRegistry

from vipcast.core.desired import NodePlan
from vipcast.core.plan import plan_for_spec
from vipcast.obs.bgp_metrics import register_bgp_metrics
from vipcast.obs.status_server import StatusServer
from vipcast.proto.bgp import SessionConfig
from vipcast.runtime.bgp_peer import PeerSettings
from vipcast.runtime.bgp_speaker import Speaker
from vipcast.runtime.bgp_transport import TransportOptions
from vipcast.spec.errors import Issue, SpecError
from vipcast.spec.load import Spec, load_documents, read_documents
from vipcast.spec.objects import BGPPeer

MARKER = "agent-running"
#: objects freed per step by :func:`release_gradually` (one step is one C-level deallocation
#: cascade, which holds the GIL from start to end)
RELEASE_STEP = 64


class PlanConsumer(Protocol):
    """Anything that acts on the node's plan (BGP speaker, data plane, L2 responder, ...)."""

    async def apply(self, plan: NodePlan) -> None: ...


#: (spec, node name) -> the node's plan; the default wires the allocator and core.plan
Planner = Callable[[Spec, str], NodePlan]


@dataclass(frozen=True)
class AgentOptions:
    config_paths: tuple[Path, ...]
    node: str
    metrics_address: tuple[str, int] | None = None
    #: where to accept BGP connections (passive peers, collisions); empty: none
    listen: tuple[tuple[str, int], ...] = ()
    router_id: str | None = None
    state_dir: Path | None = None
    poll_interval: float = 1.0
    seed: int | None = None
    #: reload (read, validate, plan) in a worker thread, so a big object set (10,000 services
    #: take seconds to parse) does not stall BFD timers, keepalives and /status; only for
    #: agents whose :meth:`Agent.load` and planner touch no loop-owned state (the file agent)
    load_in_thread: bool = False


@dataclass(frozen=True)
class Desired:
    """One validated configuration and what it asks of this node."""

    spec: Spec
    plan: NodePlan
    peers: tuple[PeerSettings, ...]
    files: Mapping[str, float] = field(default_factory=dict)


def derived_router_id(node: str) -> str:
    """A stable IPv4-formatted BGP identifier from the node name (when none is configured)."""
    value = int.from_bytes(hashlib.sha256(node.encode()).digest()[:4], "big") or 1
    return str(ipaddress.IPv4Address(value))


def peer_selects_node(spec: Spec, peer: BGPPeer, node: str) -> bool:
    selectors = peer.spec.node_selectors
    if not selectors:
        return True
    obj = spec.node(node)
    labels = dict(obj.metadata.labels) if obj is not None else {}
    labels.setdefault("kubernetes.io/hostname", node)
    return any(selector.matches(labels) for selector in selectors)


def peer_settings(
    spec: Spec, node: str, *, router_id: str | None = None, restarting: bool = False
) -> tuple[PeerSettings, ...]:
    """The BGP sessions this node keeps, from the BGPPeer objects that select it (pure)."""
    result = []
    for peer in sorted(spec.peers, key=lambda p: p.name):
        if not peer_selects_node(spec, peer, node):
            continue
        if spec.password_problem(peer) is not None:
            continue  # its passwordSecret gives no password: no session without it
        s = peer.spec
        ident = s.router_id or router_id
        if ident is None and s.source_address and ":" not in s.source_address:
            ident = s.source_address
        ebgp = s.my_asn != s.peer_asn
        ttl: int | None = None
        if ebgp:
            ttl = 255 if s.ebgp_multi_hop else 1
        hold = int(s.hold_time)
        keepalive = None if s.keepalive_time is None else int(s.keepalive_time)
        config = SessionConfig(
            local_asn=s.my_asn,
            peer_asn=s.peer_asn,
            router_id=ident or derived_router_id(node),
            hold_time=hold,
            keepalive_time=keepalive,
            connect_retry_time=float(s.connect_time),
            passive=s.passive,
            graceful_restart=s.graceful_restart,
            restart_time=int(s.restart_time),
            restarting=restarting and s.graceful_restart,
        )
        transport = TransportOptions(
            source_address=s.source_address,
            ttl=None if s.ttl_security_hops is not None else ttl,
            gtsm_hops=s.ttl_security_hops,
            md5_password=spec.peer_password(peer),
        )
        result.append(
            PeerSettings(
                name=peer.name,
                address=s.peer_address,
                port=s.peer_port,
                session=config,
                transport=transport,
            )
        )
    return tuple(result)


def mtimes(paths: Sequence[Path]) -> dict[str, float]:
    """mtime of every file under ``paths`` (a vanished file counts as a change)."""
    seen: dict[str, float] = {}
    for path in paths:
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for item in candidates:
            with contextlib.suppress(OSError):
                if item.is_file():
                    seen[str(item)] = item.stat().st_mtime
    return seen


def issues_table(issues: Sequence[Issue]) -> str:
    """The spec errors as an aligned text table for the log."""
    rows = [("FILE", "OBJECT", "FIELD", "MESSAGE")] + [
        (i.file or "-", i.obj, i.field or "-", i.message) for i in issues
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(widths[c]) if c < 3 else cell for c, cell in enumerate(row))
        for row in rows
    )


def run_planner(planner: Planner, spec: Spec, node: str) -> NodePlan:
    """``planner(spec, node)`` with the cyclic GC paused while it runs.

    Planning is a pure computation that builds tens of thousands of acyclic values (reference
    counting frees them); without the pause, the collector traces them again and again while
    they are built. It runs synchronously, so nothing else allocates meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return planner(spec, node)
    finally:
        if enabled:
            gc.enable()


def release_gradually(parts: list[Any]) -> None:
    """Drop ``parts`` (the last references to the pieces of a big value) a few at a time.

    Freeing a big tree at once (a 10,000-service Spec, the raw YAML documents) is one
    deallocation cascade in C that holds the GIL for ~0.1 s, even in a worker thread; freed in
    steps of :data:`RELEASE_STEP` objects, the interpreter can switch threads between steps.
    """
    while parts:
        del parts[-RELEASE_STEP:]


def desired_parts(desired: Desired) -> list[Any]:
    """References to every object of ``desired``'s spec and plan tuples, ``desired`` last."""
    parts: list[Any] = []
    for holder in (desired.spec, desired.plan):
        for item in fields(holder):
            value = getattr(holder, item.name)
            if isinstance(value, tuple):
                parts.extend(value)
    parts.append(desired)
    return parts


def default_planner(spec: Spec, node: str) -> NodePlan:
    """Allocation (same on every node for the same files) and this node's plan."""
    return plan_for_spec(spec, node)


class Agent:
    """One node's agent: reload loop, speaker, consumers, status endpoint."""

    def __init__(
        self,
        options: AgentOptions,
        *,
        planner: Planner = default_planner,
        consumers: Sequence[PlanConsumer] = (),
        registry: CollectorRegistry | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.options = options
        self._planner = planner
        self._consumers = list(consumers)
        self._status_sections: dict[str, Callable[[], Any]] = {}
        self.registry = registry or CollectorRegistry()
        self._log = log or logging.getLogger("vipcast.agent")
        self._rng = random.Random(options.seed)
        self.speaker = Speaker(
            listen=options.listen,
            rng=random.Random(self._rng.random()),
            log=self._log.getChild("bgp"),
        )
        register_bgp_metrics(self.registry, self.speaker.status)
        self._status_server = StatusServer(self.registry, self.status_document,
                                           ready=lambda: self.started.is_set())
        self.current: Desired | None = None
        self.last_error: list[Issue] = []
        self.restarting = False
        self._reload = asyncio.Event()
        self._stop = asyncio.Event()
        self.started = asyncio.Event()
        self.metrics_bound: tuple[str, int] | None = None

    # ---- configuration --------------------------------------------------------------------

    def load(self) -> Desired:
        """Read, validate and plan the object files; raises SpecError (nothing is changed)."""
        files = mtimes(self.options.config_paths)
        documents = read_documents(self.options.config_paths)
        spec = load_documents(documents)
        release_gradually(documents)
        plan = run_planner(self._planner, spec, self.options.node)
        peers = peer_settings(
            spec, self.options.node, router_id=self.options.router_id, restarting=self.restarting
        )
        return Desired(spec=spec, plan=plan, peers=peers, files=files)

    def _load_compared(self) -> tuple[Desired, bool]:
        """:meth:`load`, and whether it asks for the same as the running config."""
        desired = self.load()
        current = self.current
        same = (
            current is not None and current.plan == desired.plan and current.peers == desired.peers
        )
        return desired, same

    async def _load(self) -> tuple[Desired, bool | None]:
        if not self.options.load_in_thread:
            return self.load(), None
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
            return await asyncio.to_thread(self._load_compared)
        finally:
            gc.freeze()
            if was_enabled:
                gc.enable()

    async def reload(self) -> bool:
        """Validate the files whole and swap them in; on error keep the running config."""
        try:
            desired, same = await self._load()
        except SpecError as exc:
            self.last_error = list(exc.issues)
            self._log.error(
                "configuration refused, keeping the running one:\n%s", issues_table(exc.issues)
            )
            return False
        self.last_error = []
        old = self.current
        await self._swap(desired, same=same)
        del desired
        if old is not None and self.options.load_in_thread:
            # free the replaced config off the loop and a little at a time: these are the
            # last references to it (the consumers hold the new plan now)
            parts = desired_parts(old)
            del old
            await asyncio.to_thread(release_gradually, parts)
        return True

    async def _swap(self, desired: Desired, *, same: bool | None = None) -> None:
        """Make ``desired`` the running config; ``same``: already compared with it (None:
        compare here)."""
        old = self.current
        self.current = desired
        if same is None:
            same = old is not None and old.plan == desired.plan and old.peers == desired.peers
        if same:
            return
        await self.speaker.apply(desired.plan)  # routes first: sessions start with a full table
        changes = self.speaker.configure(desired.peers)
        if changes:
            self._log.info("peers: %s", ", ".join(changes))
        self._log.info(
            "plan for %s: %d BGP routes, %d L2, %d NAT rules",
            desired.plan.node,
            len(desired.plan.bgp),
            len(desired.plan.l2),
            len(desired.plan.nat),
        )
        for consumer in self._consumers:
            try:
                await consumer.apply(desired.plan)
            except Exception:
                self._log.exception("plan consumer %r failed", consumer)

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
        try:
            first = self.load()
        except SpecError as exc:
            self._log.error("configuration invalid:\n%s", issues_table(exc.issues))
            if marker is not None:
                marker.unlink(missing_ok=True)
            return 2
        if self.options.load_in_thread:
            gc.freeze()  # as after every reload: no later collection on the loop traces it
        if self.restarting:
            self._log.info("previous agent did not stop cleanly: graceful restart (R-bit set)")
        loop = asyncio.get_running_loop()
        if install_signals:
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
        try:
            if self.options.metrics_address is not None:
                self.metrics_bound = await self._status_server.start(*self.options.metrics_address)
                self._log.info("status on http://%s:%s/status", *self.metrics_bound)
            await self.speaker.start()
            await self._swap(first)
            del first  # the reload that replaces it frees it (off the loop when in a thread)
            self.started.set()
            await self._watch()
        finally:
            self._log.info("stopping: Cease/Administrative Shutdown to every peer")
            await self.speaker.stop("vipcast agent stopping")
            await self._status_server.stop()
            if install_signals:
                for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            if marker is not None:
                marker.unlink(missing_ok=True)
        return 0

    async def _watch(self) -> None:
        while not self._stop.is_set():
            waiters = [
                asyncio.ensure_future(self._stop.wait()),
                asyncio.ensure_future(self._reload.wait()),
            ]
            try:
                await asyncio.wait(
                    waiters,
                    timeout=self.options.poll_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)
            if self._stop.is_set():
                return
            if self._reload.is_set():
                self._reload.clear()
                self._log.info("reload requested")
                await self.reload()
                continue
            current = self.current.files if self.current is not None else {}
            if mtimes(self.options.config_paths) != current:
                self._log.info("object files changed: reloading")
                if not await self.reload() and self.current is not None:
                    # remember the refused files so the same error is logged once
                    self.current = Desired(
                        spec=self.current.spec,
                        plan=self.current.plan,
                        peers=self.current.peers,
                        files=mtimes(self.options.config_paths),
                    )

    # ---- status ---------------------------------------------------------------------------

    def add_status_section(self, name: str, section: Callable[[], Any]) -> None:
        """One more top-level key of /status (BFD sessions, L2 owners, data plane, ...)."""
        self._status_sections[name] = section

    def status_document(self) -> dict[str, Any]:
        plan = self.current.plan if self.current is not None else None
        document: dict[str, Any] = {
            "node": self.options.node,
            "restarting": self.restarting,
            "config": {
                "files": sorted(self.current.files) if self.current else [],
                "errors": [asdict(issue) for issue in self.last_error],
            },
            "peers": [asdict(peer) for peer in self.speaker.status()],
            "routes": [
                {"prefix": r.prefix, "peers": list(r.peers), "services": list(r.services)}
                for r in (plan.bgp if plan is not None else ())
            ],
        }
        for name, section in self._status_sections.items():
            document[name] = section()
        return document
