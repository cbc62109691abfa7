"""A whole node: the agent (BGP) plus the data plane, health checks and verified announcement.

``vipcast agent`` runs :func:`run_node` (through :mod:`vipcast.app.agent_command`), the node's
composition root. Data flows one way::

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

The policy lives in :mod:`vipcast.app.announcement`, the other consumers in
:mod:`vipcast.app.node_consumers`; this module wires them (the data plane's modules are imported
only by a node that runs one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from vipcast.app.agent import Agent, AgentOptions, Planner, default_planner
from vipcast.app.announcement import PROBES_AT_ONCE, AnnouncementPolicy
from vipcast.app.drain import drain_driver
from vipcast.app.liveness import NodeLiveness
from vipcast.app.node_consumers import (
    BfdBinding,
    HealthTargets,
    NodeL2,
    l2_config,
    l2_config_of,
    observe,
)
from vipcast.app.start_early import EarlyStart
from vipcast.core.desired import NodePlan
from vipcast.obs.membership_metrics import register_membership_metrics
from vipcast.obs.registry import CollectorRegistry
from vipcast.runtime.handoff.bird import BirdHandOff
from vipcast.sources.early_parse import EarlyParse

if TYPE_CHECKING:
    from vipcast.app.envoy_gateway import GatewaySettings

__all__ = [  # the parts live in announcement and node_consumers; importers use either
    "PROBES_AT_ONCE", "AgentFactory", "AnnouncementPolicy", "BfdBinding", "HealthTargets",
    "NodeL2", "attach_gateway", "l2_config", "l2_config_of", "observe", "run_node",
]

log = logging.getLogger("vipcast.node")


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

    def outcome(node: str, _outcome: object) -> None:
        # what the node's Envoy refuses now (a later ACK of that type clears it)
        report = gateway.cache.reports.get(node)
        agent.proxy_refused(dict(report.nacked) if report is not None else {})

    gateway = EnvoyGateway(settings, on_serving=on_serving, on_outcome=outcome)
    agent.proxy_refused({})
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
    early: EarlyStart | None = None,
    parsing: EarlyParse | None = None,
) -> int:
    """Run the agent with the data plane, L2, BFD and the announcement policy until it stops.

    ``agent_factory`` is called like :class:`Agent` (``options, planner=, consumers=,
    registry=, local=``, ``early=`` when the early start ran, ``parsing=`` when the object
    files are being parsed already: :mod:`vipcast.sources.early_parse`); the Kubernetes speaker
    passes a factory of its API-fed agent so both run one code path. The wiring is one
    way: the agent's plan goes to every consumer; the health checker and the verification
    probes report back only as observations (:meth:`Agent.observe`), which re-plan from
    memory.
    """
    registry = CollectorRegistry()
    if not dataplane_enabled:
        # the early start's speaker (vipcast.app.agent_command) goes to the file agent only
        more: dict[str, object] = {"early": early} if early is not None else {}
        if parsing is not None:
            more["parsing"] = parsing
        agent = agent_factory(options, planner=base_planner, registry=registry, **more)
        l2 = NodeL2(options.node, registry, membership_key,
                    suspicion_min=options.suspicion_min)
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
    from vipcast.dataplane.nft import NftTable
    from vipcast.dataplane.node import NodeDataplane
    from vipcast.dataplane.routes import LocalVips
    from vipcast.runtime.health import HealthChecker
    from vipcast.runtime.probe import AnnouncementGate

    health = HealthChecker()
    dataplane = NodeDataplane(NftTable(), LocalVips())
    policy = AnnouncementPolicy(AnnouncementGate(), health)
    # nothing is servable (announced, owned) before the data plane verified it
    agent = agent_factory(options, planner=base_planner, registry=registry,
                          consumers=[HealthTargets(health), dataplane, policy],
                          local=policy.local,
                          **({"parsing": parsing} if parsing is not None else {}))
    # node liveness: the membership's dead nodes are an observation like health (BGP mode:
    # its own membership; L2 mode: the L2 one), see app/liveness.py
    liveness = NodeLiveness(options.node, membership_key, policy.dead_nodes,
                            enabled=options.node_liveness, suspicion_min=options.suspicion_min)
    l2 = NodeL2(options.node, registry, membership_key,
                on_view=lambda view: policy.dead_nodes(
                    view.dead if options.node_liveness else frozenset()),
                suspicion_min=options.suspicion_min)
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
