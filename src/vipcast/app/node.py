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
from collections.abc import Callable
from dataclasses import replace

from vipcast.app.agent import Agent, AgentOptions, default_planner
from vipcast.core.desired import NodePlan
from vipcast.dataplane.nft import NftTable
from vipcast.dataplane.node import NodeDataplane
from vipcast.dataplane.routes import LocalVips
from vipcast.runtime.health import HealthCheckConfig, HealthChecker, parse_health_check
from vipcast.runtime.probe import AnnouncementGate
from vipcast.spec import ANNOTATION_HEALTH, Spec, SpecError, annotation, load_paths

log = logging.getLogger("vipcast.node")


def health_configs(spec: Spec) -> dict[str, HealthCheckConfig]:
    """Per-service health-check configs from the ``vipcast.io/health-check`` annotation."""
    out: dict[str, HealthCheckConfig] = {}
    for service in spec.services:
        text = annotation(service.metadata, ANNOTATION_HEALTH)
        if text:
            parsed = parse_health_check(text)
            if isinstance(parsed, str):
                log.warning("%s: ignoring health check %r: %s", service.key, text, parsed)
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
    ) -> None:
        self._dataplane = dataplane
        self._gate = gate
        self._health = health
        self._verify = verify
        self._interval = interval
        self.servable: frozenset[str] = frozenset()
        self._on_change: Callable[[], None] = lambda: None

    def planner(self, spec: Spec, node: str) -> NodePlan:
        """The full plan, with BGP routes kept only for servable services."""
        self._health.configure(health_configs(spec))
        plan = default_planner(spec, node)
        routes = []
        for route in plan.bgp:
            services = tuple(s for s in route.services if s in self.servable)
            if services:
                routes.append(replace(route, services=services))
        return replace(plan, bgp=tuple(routes))

    def on_change(self, callback: Callable[[], None]) -> None:
        self._on_change = callback

    async def check(self) -> frozenset[str]:
        """Probe what needs probing; the services servable now."""
        plan = self._dataplane.plan
        if plan is None:
            return frozenset()
        healthy = self._dataplane.healthy_services()
        servable: set[str] = set()
        for service in sorted({rule.service for rule in plan.nat}):
            keys = [(r.vip, r.port, r.protocol) for r in plan.nat if r.service == service]
            if service not in healthy:
                for key in keys:
                    self._gate.invalidate(key)
                continue
            if not self._verify:
                servable.add(service)
                continue
            ok = False
            for vip, port, protocol in keys:
                if self._gate.is_verified((vip, port, protocol)):
                    ok = True
                    continue
                result = await self._gate.verify(vip, port, protocol)
                if result.ok:
                    ok = True
                else:
                    log.info("%s: %s:%d not verified yet: %s", service, vip, port, result.error)
            if ok:
                servable.add(service)
        return frozenset(servable)

    async def run(self) -> None:
        """Re-check every ``interval`` seconds; ask for a re-plan when the set changes."""
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
            await asyncio.sleep(self._interval)


async def prime(
    options: AgentOptions, policy: AnnouncementPolicy, dataplane: NodeDataplane
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
    await dataplane.apply(default_planner(spec, options.node))
    policy.servable = await policy.check()
    log.info("verified before start: %s", ", ".join(sorted(policy.servable)) or "nothing")


async def run_node(options: AgentOptions, *, dataplane_enabled: bool = True) -> int:
    """Run the agent with the data plane and the announcement policy until it stops."""
    if not dataplane_enabled:
        return await Agent(options).run()
    health = HealthChecker()
    dataplane = NodeDataplane(NftTable(), LocalVips(), health)
    policy = AnnouncementPolicy(dataplane, AnnouncementGate(), health)
    agent = Agent(options, planner=policy.planner, consumers=[dataplane])
    policy.on_change(agent.request_reload)
    await prime(options, policy, dataplane)
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
