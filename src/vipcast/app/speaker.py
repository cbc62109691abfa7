"""The in-cluster node speaker: the standalone agent fed from the Kubernetes API.

It reuses :class:`~vipcast.app.agent.Agent` (BGP speaker, plan consumers, status endpoint,
graceful restart marker) and replaces only where the objects come from
(:meth:`KubeAgent.load_spec`):
reflectors of our CRDs, Services, EndpointSlices, Nodes, Namespaces and Secrets instead of
files. Any change asks the agent to reload; the snapshot is validated with the same tolerant
rules as the controller, each object once (:class:`~vipcast.sources.kube.snapshot.SpecBuilder`
keeps the validated objects of unchanged ones), and planned incrementally
(:class:`~vipcast.core.incremental.StatusNodePlanner`: an event that changes one Service or
EndpointSlice plans that Service alone). Health and verification changes re-plan from the
snapshot in memory, as for files.

A ``HandOff`` to FRR-K8s (docs/cni.md) makes the speaker write its node's ``FRRConfiguration``
(:class:`~vipcast.sources.kube.handoff.FrrK8sHandOff`, a consumer of the node's plan).

Each speaker reports what it announces (and what it withholds, with why) in its node's
``NodeAnnouncement`` (:mod:`vipcast.sources.kube.reporter`); the controller folds the reports
into every Service's ``vipcast.io/Announced`` condition.

A speaker never allocates: it announces exactly the addresses the controller wrote to the
Services' ``status.loadBalancer.ingress`` -- and only for Services of our class, of type
LoadBalancer, whose addresses lie in one of our pools -- so no node can announce an address
before the leader has committed it to the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vipcast.app.agent import Agent, AgentOptions, PlanConsumer, Planner
from vipcast.app.node import run_node
from vipcast.core.allocation import committed_assignments
from vipcast.core.desired import NodePlan
from vipcast.core.drain import Phase
from vipcast.core.gateway.address import GatewayServices
from vipcast.core.gateway.certificates import certificate_refs
from vipcast.core.incremental import StatusNodePlanner
from vipcast.core.pipeline import Local, Snapshot
from vipcast.obs.registry import CollectorRegistry
from vipcast.sources.kube.announcements import GatewayReport, RefusedConfig
from vipcast.sources.kube.client import AsyncClient
from vipcast.sources.kube.drain_report import DrainReporter
from vipcast.sources.kube.handoff import FrrK8sHandOff
from vipcast.sources.kube.named_secrets import NamedSecrets
from vipcast.sources.kube.reflector import Reflector, snapshots
from vipcast.sources.kube.reporter import AnnouncementReporter
from vipcast.sources.kube.resources import GATEWAY_KINDS, SPEAKER_KINDS, Watched, secrets
from vipcast.sources.kube.snapshot import Document, SpecBuilder
from vipcast.spec import Issue, Spec, SpecError
from vipcast.spec.checks import password_problems

if TYPE_CHECKING:
    from vipcast.app.envoy_gateway import GatewaySettings

log = logging.getLogger(__name__)

#: seconds between looks at which L2 addresses this node answers, for its NodeAnnouncement
L2_REPORT_EVERY = 0.5


def status_assignments(spec: Spec, load_balancer_class: str | None = None
                       ) -> dict[str, tuple[str, ...]]:
    """The addresses the controller committed, limited to what this speaker may announce
    (Services it :func:`~vipcast.spec.claims`, addresses inside our pools)."""
    return committed_assignments(spec, load_balancer_class)


class StatusPlanner(StatusNodePlanner):
    """Plans a node from the committed (status) assignments only, with memory: an event
    that changes a few Services or EndpointSlices plans only those
    (:class:`~vipcast.core.incremental.StatusNodePlanner`). A Gateway's addresses are the
    ``status.addresses`` the controller wrote (its stand-in Service's status); the last
    plan's committed addresses, Gateways' among them, are :attr:`assignments` (where the
    proxy model's listeners bind)."""


class KubeAgent(Agent):
    """The agent with reflectors instead of object files.

    Built like :class:`Agent` (``options, planner=, consumers=, registry=``) after the client,
    so ``functools.partial(KubeAgent, client)`` is an agent factory for
    :func:`~vipcast.app.node.run_node`. ``run()`` starts the reflectors, waits for their first
    lists, then runs the agent.
    """

    def __init__(
        self,
        client: AsyncClient,
        options: AgentOptions,
        *,
        planner: Planner | None = None,
        consumers: Sequence[PlanConsumer] = (),
        registry: CollectorRegistry | None = None,
        local: Local | None = None,
        kinds: tuple[Watched, ...] = SPEAKER_KINDS,
        load_balancer_class: str | None = None,
        sync_timeout: float = 120.0,
        report: bool = True,
        namespace: str = "vipcast-system",
        password_secrets: Sequence[str] = (),
        frr_k8s_namespaces: tuple[str, ...] = (),
    ) -> None:
        super().__init__(options, planner=planner or StatusPlanner(load_balancer_class),
                         consumers=consumers, registry=registry, local=local)
        kinds = (*kinds, *secrets(namespace, password_secrets))
        self.reflectors = [Reflector(client, w, self.request_reload) for w in kinds]
        # a Gateway's stand-in Service is of the class this speaker serves, as the controller's
        self._gateway_services = GatewayServices(load_balancer_class)
        #: the TLS Secrets our Gateways and Ingresses name (and may name), one watch each
        self.tls_secrets = NamedSecrets(client, self.request_reload)
        self._gateway = any(w.kind == "Gateway" for w in kinds)
        #: peer problems already logged (a reload must not repeat them)
        self._logged: frozenset[str] = frozenset()
        self.load_balancer_class = load_balancer_class
        #: what this node announces, written to its NodeAnnouncement (None: not reported)
        self.reporter = AnnouncementReporter(client, options.node) if report else None
        #: this node's drain state on its Node (annotation vipcast.io/drain-state)
        self.drain_reporter = DrainReporter(client, options.node) if report else None
        #: this node's FRRConfiguration, when a CNISpeaker hands off to FRR-K8s (docs/cni.md)
        self.frr_hand_off = FrrK8sHandOff(client, options.node, namespaces=frr_k8s_namespaces)
        self.add_consumer(self.frr_hand_off)
        self.last_good: tuple[Document, ...] = ()
        #: validates only the objects an event changed (the others stay the same objects,
        #: so the planner plans only the changed Services)
        self._build_spec = SpecBuilder()
        self.sync_timeout = sync_timeout
        #: the committed addresses of the last snapshot reported
        self._committed: tuple[Snapshot, dict[str, tuple[str, ...]]] | None = None
        #: the node's ``l2`` status section (added by run_node): which L2 VIPs it answers
        self._l2_status: Callable[[], Any] | None = None

    def add_status_section(self, name: str, section: Callable[[], Any]) -> None:
        """As :meth:`Agent.add_status_section`; the ``l2`` section also tells the reporter
        which L2 addresses this node answers (the runtime's owner, not the static one)."""
        super().add_status_section(name, section)
        if name == "l2":
            self._l2_status = section

    def l2_answered(self) -> frozenset[str] | None:
        """The L2 addresses this node answers now (None: no L2 runtime running)."""
        status = self._l2_status() if self._l2_status is not None else None
        if not status:
            return None
        return frozenset(str(v["ip"]) for v in status.get("vips", ())
                         if v.get("answering_here"))

    async def _follow_l2(self, reporter: AnnouncementReporter, every: float) -> None:
        """Report L2 ownership changes, which happen without a re-plan (membership view,
        servability), every ``every`` seconds."""
        while True:
            reporter.set_l2_answered(self.l2_answered())
            await asyncio.sleep(every)

    def load_spec(self) -> Spec:
        """The reflectors' objects as one Spec (the same tolerant rules as the controller)."""
        if not all(r.synced.is_set() for r in self.reflectors):
            raise SpecError([Issue("", "", "", "", "Kubernetes caches are not synced yet")])
        outcome = self._build_spec(
            snapshots([*self.reflectors, *self.tls_secrets.reflectors]), self.last_good)
        if outcome.spec is None:
            raise SpecError(list(outcome.issues) or [Issue("", "", "", "", "no usable config")])
        if self._gateway:
            self.tls_secrets.want(certificate_refs(outcome.spec))
        problems = {str(i) for i in (*outcome.issues, *password_problems(outcome.spec))}
        for text in sorted(problems - self._logged):
            log.warning("left out or refused: %s", text)
        self._logged = frozenset(problems)
        if not outcome.config_stale:
            self.last_good = outcome.config
        return outcome.spec

    def published(self, plan: NodePlan) -> None:
        """Report what this node announces (and what it withholds) in its NodeAnnouncement:
        the plan handed on, against the committed addresses and the unverified duties."""
        current = self.current
        if self.reporter is None or current is None or current.snapshot is None:
            return
        snap = current.snapshot
        if self._committed is None or self._committed[0] is not snap:
            self._committed = (snap, status_assignments(snap.spec, self.load_balancer_class))
        self.reporter.offer(plan, self._committed[1], snap.duties)

    async def run(self, install_signals: bool = True) -> int:
        """Start the reflectors, wait for their first lists, then run the agent."""
        self.tls_secrets.bind(asyncio.get_running_loop())
        tasks = [asyncio.create_task(r.run(), name=f"reflect-{r.kind}") for r in self.reflectors]
        tasks.append(asyncio.create_task(self.frr_hand_off.run(), name="frr-k8s-hand-off"))
        if self.reporter is not None:
            tasks.append(asyncio.create_task(self.reporter.run(), name="node-announcement"))
            tasks.append(asyncio.create_task(self._follow_l2(self.reporter, L2_REPORT_EVERY),
                                             name="node-announcement-l2"))
        try:
            async with asyncio.timeout(self.sync_timeout):
                for r in self.reflectors:
                    await r.synced.wait()
            return await super().run(install_signals=install_signals)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.tls_secrets.close()
            if self.drain_reporter is not None:
                await self.drain_reporter.stop()

    def proxy_refused(self, refused: Mapping[str, tuple[str, str]]) -> None:
        """What this node's Envoy refuses now goes into its NodeAnnouncement (``gateway``):
        the controller folds every node's into the Gateways' ``Programmed`` condition."""
        if self.reporter is not None:
            self.reporter.set_gateway(GatewayReport(refused=tuple(
                RefusedConfig(type=t.rsplit(".", 1)[-1][:64], version=v[:64],
                              message=m[:2048])
                for t, (v, m) in sorted(refused.items()))))

    async def set_drain(self, phase: Phase, state: str) -> None:
        """The drain moved: re-plan, and report the state on this node's Node."""
        changed = state != self.drain_state
        await super().set_drain(phase, state)
        if changed and self.drain_reporter is not None:
            self.drain_reporter.offer(state)

    async def serve(self, *, sync_timeout: float = 120.0, install_signals: bool = True) -> int:
        """:meth:`run` with a given deadline for the first lists (kept for callers)."""
        self.sync_timeout = sync_timeout
        return await self.run(install_signals=install_signals)


async def run_speaker(
    client: AsyncClient,
    options: AgentOptions,
    *,
    dataplane_enabled: bool = True,
    membership_key: bytes = b"",
    load_balancer_class: str | None = None,
    namespace: str = "vipcast-system",
    password_secrets: Sequence[str] = (),
    gateway: GatewaySettings | None = None,
    frr_k8s_namespaces: tuple[str, ...] = (),
) -> int:
    """Composition root used by ``vipcast speaker``: the node code path of ``vipcast agent``
    (data plane, health checks, verified announcement, BFD) around the API-fed agent; with
    ``gateway``, the Gateway API kinds and Ingresses are read too and the node's Envoy serves
    them (the Gateway API CRDs must be installed)."""
    kinds = (*SPEAKER_KINDS, *GATEWAY_KINDS) if gateway is not None else SPEAKER_KINDS
    factory = functools.partial(KubeAgent, client, load_balancer_class=load_balancer_class,
                                namespace=namespace, password_secrets=password_secrets,
                                kinds=kinds, frr_k8s_namespaces=frr_k8s_namespaces)
    return await run_node(options, dataplane_enabled=dataplane_enabled,
                          membership_key=membership_key, agent_factory=factory,
                          base_planner=StatusPlanner(load_balancer_class), gateway=gateway)
