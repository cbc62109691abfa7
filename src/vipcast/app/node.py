"""A whole node: the agent (BGP) plus the data plane, health checks and verified announcement.

``vipcast agent`` runs :func:`run_node`. The pieces and how they meet:

- the :class:`~vipcast.app.agent.Agent` loads the files and plans; its planner here is
  :class:`AnnouncementPolicy.planner`, which keeps in the node's plan only the BGP routes of
  services the node can really serve now;
- :class:`~vipcast.dataplane.node.NodeDataplane` (a plan consumer) programs nftables and local
  VIP routes, without the backends the :class:`~vipcast.runtime.health.HealthChecker` reports
  down;
- :meth:`AnnouncementPolicy.run` watches health and probes each VIP port through the node's own
  data plane (:class:`~vipcast.runtime.probe.AnnouncementGate`); when the set of servable
  services changes it asks the agent to re-plan, so routes are announced only after a
  successful probe and withdrawn when the last healthy backend goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace

from prometheus_client.registry import CollectorRegistry

from vipcast.app.agent import (
    Agent,
    AgentOptions,
    Planner,
    default_planner,
    run_planner,
)
from vipcast.core.desired import NodePlan
from vipcast.dataplane.nft import NftTable
from vipcast.dataplane.node import NodeDataplane
from vipcast.dataplane.routes import LocalVips
from vipcast.proto.bfd.session import StateChanged
from vipcast.runtime.bfd import BfdManager
from vipcast.runtime.bfd_bgp import BgpBfd, bfd_peers
from vipcast.runtime.health import HealthCheckConfig, HealthChecker, parse_health_check
from vipcast.runtime.l2 import L2Config, L2Runtime
from vipcast.runtime.membership import DEFAULT_PORT as MEMBERSHIP_PORT
from vipcast.runtime.probe import AnnouncementGate
from vipcast.spec import ANNOTATION_HEALTH, Spec, SpecError, annotation, load_paths

log = logging.getLogger("vipcast.node")

#: verification probes in flight at once
PROBES_AT_ONCE = 32
#: (vip, port, protocol) of one VIP port
VipKey = tuple[str, int, str]


def health_configs(spec: Spec) -> dict[str, HealthCheckConfig]:
    """Per-service health-check configs from the ``vipcast.io/health-check`` annotation."""
    out: dict[str, HealthCheckConfig] = {}
    for service in spec.services:
        text = annotation(service.metadata, ANNOTATION_HEALTH)
        if text:
            parsed = parse_health_check(text)
            if isinstance(parsed, str):
                # the controller reports it on the Service (condition); not logged per load
                log.debug("%s: default health check instead of %r: %s", service.key, text,
                          parsed)
            else:
                out[service.key] = parsed
    return out


class AnnouncementPolicy:
    """Decides which services' routes the node may announce (healthy and verified)."""

    def __init__(
        self,
        dataplane: NodeDataplane,
        gate: AnnouncementGate,
        health: HealthChecker,
        *,
        verify: bool = True,
        interval: float = 0.2,
        base_planner: Planner = default_planner,
    ) -> None:
        self._base_planner = base_planner
        self._dataplane = dataplane
        self._gate = gate
        self._health = health
        self._verify = verify
        self._interval = interval
        self.servable: frozenset[str] = frozenset()
        self._on_change: Callable[[], None] = lambda: None
        #: the L2 VIPs last declared servable, and who hears about them
        self.servable_vips: frozenset[str] | None = None
        self._on_servable_vips: Callable[[frozenset[str]], None] | None = None
        self._probes: dict[VipKey, asyncio.Task[None]] = {}
        self._probe_slots = asyncio.Semaphore(PROBES_AT_ONCE)

    def planner(self, spec: Spec, node: str) -> NodePlan:
        """The full plan, with BGP routes kept only for servable services."""
        self._health.configure(health_configs(spec))
        plan = self._base_planner(spec, node)
        routes = []
        for route in plan.bgp:
            services = tuple(s for s in route.services if s in self.servable)
            if services:
                routes.append(replace(route, services=services))
        return replace(plan, bgp=tuple(routes))

    def on_change(self, callback: Callable[[], None]) -> None:
        self._on_change = callback

    def on_servable_vips(self, callback: Callable[[frozenset[str]], None]) -> None:
        """``callback(vips)`` whenever the set of L2 VIPs this node can serve changes (the L2
        runtime's :meth:`~vipcast.runtime.l2.L2Runtime.set_servable`)."""
        self._on_servable_vips = callback

    def l2_vips(self) -> frozenset[str]:
        """The plan's L2 VIPs with at least one servable service (healthy and verified)."""
        plan = self._dataplane.plan
        if plan is None:
            return frozenset()
        return frozenset(
            o.ip for o in plan.l2 if any(s in self.servable for s in o.services)
        )

    def publish_l2(self) -> None:
        """Tell the L2 runtime what it can serve, if that changed (plan or servability)."""
        if self._on_servable_vips is None:
            return
        vips = self.l2_vips()
        if vips != self.servable_vips:
            log.info("L2 VIPs servable here: %s", ",".join(sorted(vips)) or "none")
            self.servable_vips = vips
            self._on_servable_vips(vips)

    async def check(self, *, wait: bool = False) -> frozenset[str]:
        """The services servable now: a healthy backend, and a VIP port verified through the
        node's own data plane.

        Verification probes run in the background (at most :data:`PROBES_AT_ONCE` at a time)
        and count from the first check after they succeed, so a slow or failing probe never
        delays another service's change. ``wait`` awaits the probes first (start-up).
        """
        plan = self._dataplane.plan
        if plan is None:
            return frozenset()
        healthy = self._dataplane.healthy_services()
        ports: dict[str, list[VipKey]] = {}
        for r in plan.nat:
            ports.setdefault(r.service, []).append((r.vip, r.port, r.protocol))
        for service, keys in ports.items():
            if service not in healthy:
                for key in keys:
                    running = self._probes.get(key)
                    if running is not None:
                        running.cancel()  # a success now would predate the failure
                    self._gate.invalidate(key)
            elif self._verify:
                for key in keys:
                    if not self._gate.may_announce(key) and key not in self._probes:
                        self._start_probe(service, key)
        if wait and self._probes:
            await asyncio.gather(*self._probes.values(), return_exceptions=True)
        return frozenset(
            service
            for service, keys in ports.items()
            if service in healthy
            and (not self._verify or any(self._gate.may_announce(k) for k in keys))
        )

    def _start_probe(self, service: str, key: VipKey) -> None:
        async def probe() -> None:
            async with self._probe_slots:
                vip, port, protocol = key
                result = await self._gate.verify(vip, port, protocol)
            if not result.ok:
                log.info("%s: %s:%d not verified yet: %s", service, vip, port, result.error)

        task = asyncio.get_running_loop().create_task(probe(), name=f"verify {key}")
        self._probes[key] = task
        task.add_done_callback(
            lambda done: self._probes.pop(key) if self._probes.get(key) is done else None
        )

    def cancel_probes(self) -> None:
        for task in list(self._probes.values()):
            task.cancel()

    async def run(self) -> None:
        """Re-check every ``interval`` seconds; ask for a re-plan when the set changes."""
        try:
            await self._run()
        finally:
            self.cancel_probes()

    async def _run(self) -> None:
        while True:
            servable = await self.check()
            if servable != self.servable:
                added, gone = servable - self.servable, self.servable - servable
                self.servable = servable
                log.info(
                    "servable services changed: +%s -%s",
                    ",".join(sorted(added)) or "none", ",".join(sorted(gone)) or "none",
                )
                self._on_change()
            self.publish_l2()
            await asyncio.sleep(self._interval)


class BfdBinding:
    """A plan consumer that keeps one BFD session per BGP peer with a ``bfdProfile``.

    When BFD declares a peer down, that peer's BGP connections are dropped at once, so the
    router loses this node's routes within the BFD detection time, not the hold time.
    """

    def __init__(self, agent: Agent, registry: CollectorRegistry) -> None:
        self._agent = agent
        self.bfd = BgpBfd(BfdManager(registry=registry), on_down=self._down)

    def _down(self, name: str, change: StateChanged) -> None:
        log.warning("BFD: peer %s down (%s): dropping its BGP session", name, change.diag)
        self._agent.speaker.reset_peer(name)

    async def apply(self, plan: NodePlan) -> None:
        current = self._agent.current
        if current is None:
            return
        changes = self.bfd.configure(bfd_peers(current.spec, [p.name for p in current.peers]))
        if changes:
            log.info("BFD sessions: %s", ", ".join(changes))

    def close(self) -> None:
        self.bfd.close()

    def status(self) -> dict[str, object]:
        """BGPPeer name -> its BFD session as plain data (the ``bfd`` section of /status)."""
        return {name: asdict(st) for name, st in self.bfd.status().items()}


def observe(agent: Agent, registry: CollectorRegistry, l2: NodeL2) -> BfdBinding:
    """Bind BFD to the agent's BGP peers and add the ``bfd`` and ``l2`` /status sections.

    Called once per agent: the BFD and L2 metrics live on ``registry`` from construction, so
    reloads reconfigure sessions without registering anything again.
    """
    bfd = BfdBinding(agent, registry)
    agent.add_consumer(bfd)
    agent.add_status_section("bfd", bfd.status)
    agent.add_status_section("l2", l2.status)
    return bfd


async def prime(
    options: AgentOptions,
    policy: AnnouncementPolicy,
    dataplane: NodeDataplane,
    base_planner: Planner = default_planner,
) -> None:
    """Before the first BGP session: program the data plane and verify what can be served.

    So the first UPDATEs (and the End-of-RIB after a graceful restart) already carry every
    route the node can serve, instead of an empty table followed by late announcements. An
    invalid config is left to the agent, which reports it.
    """
    try:
        spec = load_paths(options.config_paths)
    except SpecError:
        return
    await dataplane.apply(run_planner(base_planner, spec, options.node))
    policy.servable = await policy.check(wait=True)
    policy.publish_l2()
    log.info("verified before start: %s", ", ".join(sorted(policy.servable)) or "nothing")


def l2_config(spec: Spec, node: str, key: bytes) -> L2Config:
    """Membership of the Nodes that could own an L2 address: Ready and selected by some
    L2Advertisement's nodeSelectors (none: every node), each at its first InternalIP on the
    membership port. A node without a speaker there (a control-plane node the selectors
    leave out, a NotReady one) would count against quorum without ever answering. ``node``
    itself is always a member."""
    me = spec.node(node)
    selectors = [a.spec.node_selectors for a in spec.l2_advertisements]
    peers = {
        n.metadata.name: (n.addresses_of()[0], MEMBERSHIP_PORT)
        for n in spec.nodes
        if n.metadata.name != node and n.addresses_of() and n.ready
        and any(not sel or any(s.matches(n.metadata.labels) for s in sel)
                for sel in selectors)
    }
    bind = (me.addresses_of()[0] if me and me.addresses_of() else "0.0.0.0", MEMBERSHIP_PORT)
    return L2Config(node=node, peers=peers, key=key, bind=bind)


class NodeL2:
    """The L2 responder and membership, started by the first plan whose config has
    L2Advertisements — from object files or from the Kubernetes API alike.

    The member list is the config's Nodes at that moment (a node added later joins after a
    restart of the agents). Until the announcement policy says otherwise, nothing is servable
    when ``gate`` (the data plane verifies first); without a data plane everything planned is.
    """

    def __init__(
        self, agent: Agent, registry: CollectorRegistry, key: bytes, *, gate: bool
    ) -> None:
        self._agent = agent
        self._registry = registry
        self._key = key
        self._servable: frozenset[str] | None = frozenset() if gate else None
        self.runtime: L2Runtime | None = None

    async def apply(self, plan: NodePlan) -> None:
        if self.runtime is None:
            current = self._agent.current
            if current is None or not current.spec.l2_advertisements:
                return
            config = l2_config(current.spec, self._agent.options.node, self._key)
            runtime = L2Runtime(config, self._registry, incarnation=time.time_ns() // 1_000_000)
            runtime.set_servable(self._servable)
            await runtime.start()
            self.runtime = runtime
        await self.runtime.apply(plan)

    def set_servable(self, ips: frozenset[str] | None) -> None:
        self._servable = ips
        if self.runtime is not None:
            self.runtime.set_servable(ips)

    def status(self) -> dict[str, object]:
        return self.runtime.status() if self.runtime is not None else {}

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop(graceful=True)


#: builds the node's Agent: the standalone one reads files; the Kubernetes speaker passes its own
AgentFactory = Callable[..., Agent]


async def run_node(
    options: AgentOptions,
    *,
    dataplane_enabled: bool = True,
    membership_key: bytes = b"",
    agent_factory: AgentFactory = Agent,
    base_planner: Planner = default_planner,
) -> int:
    """Run the agent with the data plane, L2, BFD and the announcement policy until it stops.

    ``agent_factory`` is called like :class:`Agent` (``options, planner=, consumers=,
    registry=``); the Kubernetes speaker passes a factory of its API-fed agent so both run
    one code path.
    """
    registry = CollectorRegistry()
    if not dataplane_enabled:
        agent = agent_factory(options, registry=registry)
        l2 = NodeL2(agent, registry, membership_key, gate=False)
        agent.add_consumer(l2)
        bare = observe(agent, registry, l2)
        try:
            return int(await agent.run())
        finally:
            bare.close()
            await l2.stop()
    health = HealthChecker()
    dataplane = NodeDataplane(NftTable(), LocalVips(), health)
    policy = AnnouncementPolicy(dataplane, AnnouncementGate(), health, base_planner=base_planner)
    agent = agent_factory(options, planner=policy.planner, consumers=[dataplane],
                          registry=registry)
    # own no VIP before the data plane has verified it can serve it
    l2 = NodeL2(agent, registry, membership_key, gate=True)
    agent.add_consumer(l2)
    bfd = observe(agent, registry, l2)
    policy.on_change(agent.request_reload)
    policy.on_servable_vips(l2.set_servable)
    await prime(options, policy, dataplane, base_planner)
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
        await health.close()
        bfd.close()
        await l2.stop()
