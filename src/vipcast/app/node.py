"""A whole node: the agent (BGP) plus the data plane, health checks and verified announcement.

``vipcast agent`` runs :func:`run_node`, the node's composition root. Data flows one way::

    object files / API ──> Snapshot ──> plan(snapshot, observations) ──> NodePlan ──> consumers
                                              ^                                          |
                         observations (Local) └── AnnouncementPolicy <── health, probes ─┘

- the :class:`~vipcast.app.agent.Agent` loads the config into a snapshot (only changed files
  are read) and re-plans from it in memory whenever an observation changes;
- every consumer gets the one plan and applies the difference: the BGP speaker (routes and
  sessions), :class:`~vipcast.dataplane.node.NodeDataplane` (nftables without the plan's
  ``down`` backends, local VIP routes), :class:`HealthTargets` (what the
  :class:`~vipcast.runtime.health.HealthChecker` probes), :class:`BfdBinding` (BFD sessions),
  :class:`NodeL2` (L2 members, owners, servable VIPs);
- :class:`AnnouncementPolicy` watches health flips and probes each VIP port through the node's
  own data plane (:class:`~vipcast.runtime.probe.AnnouncementGate`); it reports what it
  observes as a :class:`~vipcast.core.pipeline.Local` value, never by calling a consumer. Routes
  are announced only after a successful probe and withdrawn when the last healthy backend goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING

from vipcast.app.agent import Agent, AgentOptions, Planner, default_planner
from vipcast.app.drain import drain_driver
from vipcast.app.liveness import NodeLiveness
from vipcast.core.desired import BackendKey, BfdPeer, HealthTarget, NatRule, NodePlan, VipKey
from vipcast.core.pipeline import Local, healthy_services, l2_members
from vipcast.dataplane.nft import NftTable
from vipcast.dataplane.node import NodeDataplane
from vipcast.dataplane.routes import LocalVips
from vipcast.obs.membership_metrics import register_membership_metrics
from vipcast.obs.registry import CollectorRegistry
from vipcast.proto.bfd.session import StateChanged
from vipcast.proto.membership import View
from vipcast.runtime.bfd.bgp import BgpBfd
from vipcast.runtime.bfd.manager import BfdManager
from vipcast.runtime.handoff.bird import BirdHandOff
from vipcast.runtime.health import HealthChecker
from vipcast.runtime.l2.driver import L2Config, L2Runtime
from vipcast.runtime.membership import DEFAULT_PORT as MEMBERSHIP_PORT
from vipcast.runtime.probe import AnnouncementGate
from vipcast.spec import Spec

if TYPE_CHECKING:
    from vipcast.app.envoy_gateway import GatewaySettings

log = logging.getLogger("vipcast.node")

#: verification probes in flight at once
PROBES_AT_ONCE = 32


class _PlanIndex:
    """What the policy looks up in one plan, built once per plan (not per check)."""

    def __init__(self, plan: NodePlan) -> None:
        self.plan = plan
        self.ports: dict[str, list[VipKey]] = {}
        self.rules: dict[str, list[NatRule]] = {}
        for r in plan.nat:
            self.ports.setdefault(r.service, []).append((r.vip, r.port, r.protocol))
            self.rules.setdefault(r.service, []).append(r)
        self.services_of: dict[BackendKey, tuple[str, ...]] = {
            (t.ip, t.port): t.services for t in plan.health
        }
        self.healthy: frozenset[str] | None = None
        #: services whose health changed since the policy last looked (see :meth:`flipped`)
        self._flipped: set[str] = set()
        self.down: frozenset[BackendKey] = frozenset()
        #: the policy's bookkeeping for this plan: servable services (None: not checked yet),
        #: those waiting for verification, the last answer
        self.servable: set[str] | None = None
        self.waiting: set[str] = set()
        self.result: frozenset[str] | None = None

    def healthy_services(self, down: frozenset[BackendKey]) -> frozenset[str]:
        """Services with a usable backend not down; after a flip only the services of the
        backends that flipped are looked at again."""
        if self.healthy is None:
            self.healthy = healthy_services(self.plan.nat, down)
        elif down != self.down:
            touched = {s for k in down ^ self.down for s in self.services_of.get(k, ())}
            gained = {s for s in touched if healthy_services(self.rules.get(s, ()), down)}
            lost = touched - gained
            gained -= self.healthy
            lost &= self.healthy
            if gained or lost:
                self.healthy = (self.healthy | gained) - lost
                self._flipped |= gained | lost
        self.down = down
        return self.healthy

    def flipped(self) -> set[str]:
        """The services whose health changed since the last call (their healthy state is
        :attr:`healthy`'s); looked at instead of comparing 10,000 names on every check."""
        out, self._flipped = self._flipped, set()
        return out


class AnnouncementPolicy:
    """What the node observes about its services: which backends are down (the health
    checker) and which services it can serve (a healthy backend, and a VIP port verified
    through the node's own data plane, :class:`~vipcast.runtime.probe.AnnouncementGate`).

    A plan consumer (it needs the plan's NAT rules) that reports back only values: each time
    what it observes changes, ``on_local(Local(...))`` (the agent's
    :meth:`~vipcast.app.agent.Agent.observe`, which re-plans from memory). It wakes on a health
    flip, a new plan or a finished probe, and every ``interval`` seconds.
    """

    def __init__(
        self,
        gate: AnnouncementGate,
        health: HealthChecker,
        *,
        verify: bool = True,
        interval: float = 0.2,
        on_local: Callable[[Local], Awaitable[None]] | None = None,
    ) -> None:
        self._gate = gate
        self._health = health
        self._verify = verify
        self._interval = interval
        self._on_local = on_local
        self._index: _PlanIndex | None = None
        self.servable: frozenset[str] = frozenset()
        self.local = Local(servable=frozenset())
        self._probes: dict[VipKey, asyncio.Task[None]] = {}
        self._probe_slots = asyncio.Semaphore(PROBES_AT_ONCE)
        #: services whose probe ended since the last check
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        health.on_change(self._wake.set)
        #: the node's Envoy is ready and ACKed the current configuration (an observation)
        self._proxy_ready = False
        #: nodes the membership says are dead (an observation, see app/liveness.py)
        self._dead_nodes: frozenset[str] = frozenset()

    async def apply(self, plan: NodePlan) -> None:
        """A new plan (new services may need probes): check again now."""
        if self._index is None or self._index.plan.nat is not plan.nat:
            self._index = _PlanIndex(plan)
            self._wake.set()

    def report_to(self, on_local: Callable[[Local], Awaitable[None]]) -> None:
        """Where changed observations go (the agent's :meth:`~vipcast.app.agent.Agent.observe`)."""
        self._on_local = on_local

    def proxy_ready(self, ready: bool) -> None:
        """The node's Envoy started or stopped serving its current configuration (an event
        from the gateway; the next check reports it): the Gateways' VIPs follow it."""
        if ready != self._proxy_ready:
            self._proxy_ready = ready
            self._wake.set()

    def dead_nodes(self, nodes: frozenset[str]) -> None:
        """The membership's view of dead nodes changed (an event from the membership; the next
        check reports it): their backends leave the Cluster-policy maps."""
        if nodes != self._dead_nodes:
            self._dead_nodes = nodes
            self._wake.set()

    def observed(self) -> Local:
        """What the node observes now, as the planner's input."""
        return Local(servable=self.servable, down=self._health.down(),
                     proxy_ready=self._proxy_ready, dead_nodes=self._dead_nodes)

    async def check(self, *, wait: bool = False) -> frozenset[str]:
        """The services servable now: a healthy backend, and a VIP port verified through the
        node's own data plane.

        Verification probes run in the background (at most :data:`PROBES_AT_ONCE` at a time)
        and count from the first check after they succeed, so a slow or failing probe never
        delays another service's change. ``wait`` awaits the probes first (start-up). After
        the first check of a plan, only the services whose health changed, whose probe ended
        or that still wait for verification are looked at.
        """
        index = self._index
        if index is None:
            return frozenset()
        healthy = index.healthy_services(self._health.down())
        flipped = index.flipped()
        if index.servable is None:
            todo: Iterable[str] = index.ports
            index.servable = set()
        else:
            todo = flipped | self._pending | index.waiting
        self._pending = set()
        self._look(index, todo, healthy)
        if wait and self._probes:
            await asyncio.gather(*self._probes.values(), return_exceptions=True)
            todo, self._pending = self._pending | index.waiting, set()
            self._look(index, todo, healthy)
        if index.result is None or index.result != index.servable:  # set equality, in C
            index.result = frozenset(index.servable)
        return index.result

    def _look(self, index: _PlanIndex, services: Iterable[str], healthy: frozenset[str]
              ) -> None:
        """Probe or forget these services' VIP ports as their health says; note which are
        servable now and which still wait for verification."""
        assert index.servable is not None
        for service in services:
            keys = index.ports.get(service, ())
            if service not in healthy:
                for key in keys:
                    running = self._probes.get(key)
                    if running is not None:
                        running.cancel()  # a success now would predate the failure
                    self._gate.invalidate(key)
                index.servable.discard(service)
                index.waiting.discard(service)
                continue
            if not keys:
                continue
            if not self._verify or any(self._gate.may_announce(k) for k in keys):
                index.servable.add(service)
                index.waiting.discard(service)
                continue
            index.servable.discard(service)
            index.waiting.add(service)
            for key in keys:
                if key not in self._probes:
                    self._start_probe(service, key)

    def _start_probe(self, service: str, key: VipKey) -> None:
        async def probe() -> None:
            async with self._probe_slots:
                vip, port, protocol = key
                result = await self._gate.verify(vip, port, protocol)
            self._pending.add(service)
            if result.ok:
                self._wake.set()
            else:
                log.info("%s: %s:%d not verified yet: %s", service, vip, port, result.error)

        task = asyncio.get_running_loop().create_task(probe(), name=f"verify {key}")
        self._probes[key] = task
        task.add_done_callback(
            lambda done: self._probes.pop(key) if self._probes.get(key) is done else None
        )

    def cancel_probes(self) -> None:
        for task in list(self._probes.values()):
            task.cancel()

    async def settle(self) -> Local:
        """Check once, awaiting the probes (start-up); the observations as the planner's input."""
        self.servable = await self.check(wait=True)
        self.local = self.observed()
        return self.local

    async def run(self) -> None:
        """Check on every wake-up (and every ``interval`` s); report what changed."""
        try:
            await self._run()
        finally:
            self.cancel_probes()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            servable = await self.check()
            if servable != self.servable:
                added, gone = servable - self.servable, self.servable - servable
                log.info(
                    "servable services changed: +%s -%s",
                    ",".join(sorted(added)) or "none", ",".join(sorted(gone)) or "none",
                )
                self.servable = servable
            local = self.observed()
            if local != self.local:
                self.local = local
                if self._on_local is not None:
                    await self._on_local(local)


class HealthTargets:
    """A plan consumer: the health checker probes exactly the plan's health targets."""

    def __init__(self, health: HealthChecker) -> None:
        self._health = health
        self._targets: tuple[HealthTarget, ...] | None = None

    async def apply(self, plan: NodePlan) -> None:
        if plan.health != self._targets:
            self._targets = plan.health
            self._health.set_targets(plan.health)


class BfdBinding:
    """A plan consumer that keeps one BFD session per BGP peer with a ``bfdProfile``.

    When BFD declares a peer down, ``on_down(name)`` drops that peer's BGP connections at
    once (the composition root wires it to the speaker), so the router loses this node's
    routes within the BFD detection time, not the hold time.
    """

    def __init__(self, registry: CollectorRegistry, on_down: Callable[[str], object]) -> None:
        self._on_down = on_down
        self._peers: tuple[BfdPeer, ...] | None = None
        self.bfd = BgpBfd(BfdManager(registry=registry), on_down=self._down)

    def _down(self, name: str, change: StateChanged) -> None:
        log.warning("BFD: peer %s down (%s): dropping its BGP session", name, change.diag)
        self._on_down(name)

    async def apply(self, plan: NodePlan) -> None:
        if plan.bfd == self._peers and not self._failed():
            return
        self._peers = plan.bfd
        changes = self.bfd.configure(plan.bfd)
        if changes:
            log.info("BFD sessions: %s", ", ".join(changes))

    def _failed(self) -> bool:
        """Some planned session has no handle (its sockets failed): try again."""
        return any(p.name not in self.bfd.handles() for p in self._peers or ())

    def close(self) -> None:
        self.bfd.close()

    def status(self) -> dict[str, object]:
        """BGPPeer name -> its BFD session as plain data (the ``bfd`` section of /status)."""
        return {name: asdict(st) for name, st in self.bfd.status().items()}


def observe(agent: Agent, registry: CollectorRegistry, l2: NodeL2) -> BfdBinding:
    """Bind BFD to the agent's BGP peers and add the ``bfd`` and ``l2`` /status sections.

    Called once per agent: the BFD and L2 metrics live on ``registry`` from construction, so
    new plans reconfigure sessions without registering anything again.
    """
    bfd = BfdBinding(registry, agent.speaker.reset_peer)
    agent.add_consumer(bfd)
    agent.add_status_section("bfd", bfd.status)
    agent.add_status_section("l2", l2.status)
    return bfd


def l2_config_of(plan: NodePlan, key: bytes) -> L2Config:
    """The L2 runtime's membership config from the plan's members."""
    me = next((m for m in plan.l2_members if m.name == plan.node), None)
    peers = {
        m.name: (m.address, MEMBERSHIP_PORT)
        for m in plan.l2_members
        if m.name != plan.node and m.address is not None
    }
    bind = (me.address if me is not None and me.address else "0.0.0.0", MEMBERSHIP_PORT)
    return L2Config(node=plan.node, peers=peers, key=key, bind=bind)


def l2_config(spec: Spec, node: str, key: bytes) -> L2Config:
    """Membership of the Nodes that could own an L2 address (see
    :func:`vipcast.core.pipeline.l2_members`), each on the membership port."""
    return l2_config_of(NodePlan(node=node, l2_members=l2_members(spec, node)), key)


class NodeL2:
    """The L2 responder and membership, started by the first plan with L2 members (a config
    with L2Advertisements) — from object files or from the Kubernetes API alike.

    The member list follows every plan: a Node added to (or removed from) the config joins
    (or leaves) this node's membership view without a restart (:meth:`L2Runtime.set_peers`).
    Only a change of this node's own membership address, or peers appearing for a runtime that
    started alone (no socket), rebuilds the runtime. What the node may own follows the plan's
    ``l2_servable``.
    """

    def __init__(self, node: str, registry: CollectorRegistry, key: bytes,
                 on_view: Callable[[View], None] | None = None) -> None:
        self._node = node
        self._registry = registry
        self._key = key
        self._on_view = on_view
        self.runtime: L2Runtime | None = None

    async def apply(self, plan: NodePlan) -> None:
        if self.runtime is not None and plan.l2_members:
            config = l2_config_of(plan, self._key)
            current = self.runtime.config
            if config.bind != current.bind or (config.peers and not current.peers):
                log.info("l2 %s: membership address or mode changed, rebuilding the runtime",
                         plan.node)
                await self.runtime.stop(graceful=True)
                self.runtime = None
            elif config.peers != current.peers and current.peers:
                log.info("l2 %s: members now %s", plan.node, sorted(config.peers))
                self.runtime.set_peers(config.peers)
        if self.runtime is None:
            if not plan.l2_members:
                return
            config = l2_config_of(plan, self._key)
            runtime = L2Runtime(config, self._registry, on_view=self._on_view)
            runtime.set_servable(plan.l2_servable)
            await runtime.start()
            self.runtime = runtime
        self.runtime.set_servable(plan.l2_servable)
        await self.runtime.apply(plan)

    def status(self) -> dict[str, object]:
        return self.runtime.status() if self.runtime is not None else {}

    def membership_counters(self) -> dict[str, object] | None:
        return self.runtime.membership_counters() if self.runtime is not None else None

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop(graceful=True)


def attach_gateway(
    agent: Agent, settings: GatewaySettings | None,
    on_serving: Callable[[bool], None] = lambda serving: None,
) -> asyncio.Task[None] | None:
    """The node's L7 gateway as one more plan consumer (Envoy fed over ADS, supervised in the
    background; its state in the ``gateway`` section of /status). Whether Envoy serves the
    current configuration goes to ``on_serving`` (the announcement policy's observation)."""
    if settings is None:
        return None
    # imported here: Envoy's protobufs and gRPC cost ~0.5 s of start-up to nodes without it
    from vipcast.app.envoy_gateway import EnvoyGateway, ProxyConsumer

    gateway = EnvoyGateway(settings, on_serving=on_serving)
    agent.add_consumer(ProxyConsumer(gateway))
    agent.add_status_section("gateway", gateway.status)
    task = asyncio.create_task(gateway.run(), name="envoy-gateway")

    def crashed(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.error("the L7 gateway stopped", exc_info=done.exception())

    task.add_done_callback(crashed)
    return task


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


#: builds the node's Agent: the standalone one reads files; the Kubernetes speaker passes its own
AgentFactory = Callable[..., Agent]


async def run_node(
    options: AgentOptions,
    *,
    dataplane_enabled: bool = True,
    membership_key: bytes = b"",
    agent_factory: AgentFactory = Agent,
    base_planner: Planner = default_planner,
    gateway: GatewaySettings | None = None,
) -> int:
    """Run the agent with the data plane, L2, BFD and the announcement policy until it stops.

    ``agent_factory`` is called like :class:`Agent` (``options, planner=, consumers=,
    registry=, local=``); the Kubernetes speaker passes a factory of its API-fed agent so both
    run one code path. The wiring is one way: the agent's plan goes to every consumer; the
    health checker and the verification probes report back only as observations
    (:meth:`Agent.observe`), which re-plan from memory.
    """
    registry = CollectorRegistry()
    if not dataplane_enabled:
        agent = agent_factory(options, planner=base_planner, registry=registry)
        l2 = NodeL2(options.node, registry, membership_key)
        register_membership_metrics(registry, l2.membership_counters)
        agent.add_consumer(l2)
        bird = BirdHandOff()
        agent.add_consumer(bird)
        agent.add_status_section("handoff", bird.status)
        bare = observe(agent, registry, l2)
        l7 = attach_gateway(agent, gateway)
        drain = drain_driver(agent, options)
        try:
            return int(await agent.run())
        finally:
            await drain.stop()
            await _stop(l7)
            bare.close()
            await l2.stop()
            await bird.stop()
    health = HealthChecker()
    dataplane = NodeDataplane(NftTable(), LocalVips())
    policy = AnnouncementPolicy(AnnouncementGate(), health)
    # nothing is servable (announced, owned) before the data plane verified it
    agent = agent_factory(options, planner=base_planner, registry=registry,
                          consumers=[HealthTargets(health), dataplane, policy],
                          local=policy.local)
    # node liveness: the membership's dead nodes are an observation like health (BGP mode:
    # its own membership; L2 mode: the L2 one), see app/liveness.py
    liveness = NodeLiveness(options.node, membership_key, policy.dead_nodes,
                            enabled=options.node_liveness)
    l2 = NodeL2(options.node, registry, membership_key,
                on_view=lambda view: policy.dead_nodes(
                    view.dead if options.node_liveness else frozenset()))
    register_membership_metrics(registry,
                                lambda: l2.membership_counters() or liveness.counters())
    agent.add_consumer(liveness)  # before L2: it frees the membership port for it
    agent.add_consumer(l2)
    agent.add_status_section("liveness", liveness.status)
    bird = BirdHandOff()
    agent.add_consumer(bird)
    agent.add_status_section("handoff", bird.status)
    bfd = observe(agent, registry, l2)
    l7 = attach_gateway(agent, gateway, policy.proxy_ready)
    drain = drain_driver(agent, options)

    async def prime(plan: NodePlan) -> None:
        """Before the first BGP session: program the data plane and verify what can be
        served, so the first UPDATEs (and the End-of-RIB after a graceful restart) already
        carry every route the node can serve."""
        await HealthTargets(health).apply(plan)
        await dataplane.apply(plan)
        await policy.apply(plan)
        local = await policy.settle()
        await agent.observe(local)
        log.info("verified before start: %s", ", ".join(sorted(policy.servable)) or "nothing")

    agent.prime = prime
    policy.report_to(agent.observe)
    background = [
        asyncio.create_task(dataplane.run(), name="dataplane"),
        asyncio.create_task(policy.run(), name="announcement-policy"),
    ]
    try:
        return await agent.run()
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await drain.stop()
        await _stop(l7)
        await health.close()
        bfd.close()
        await liveness.stop()
        await l2.stop()
        await bird.stop()
