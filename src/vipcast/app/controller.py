"""The in-cluster controller: allocates Service IPs and writes them to Service status.

Wiring: one reflector per kind it reads (our CRDs, Services, Namespaces), a Lease elector, a
status writer and an Event recorder. The reconcile is level-triggered: any change marks the
state dirty; a round takes a snapshot of every store, validates it (bad objects left out, a bad
config keeps the last good one), allocates, and writes the difference.

Assignments live in the Services' ``status.loadBalancer.ingress`` and nowhere else: a new
leader rebuilds all current assignments from every Service's status before allocating
anything (the allocator keeps what is in ``current``), so a restart or failover moves no IP.
Only the leader writes; standbys keep their caches warm. Each Service's status write and the
Event of its decision are in :mod:`vipcast.app.service_status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import httpx2 as httpx

from vipcast.alloc import AllocationResult
from vipcast.app.service_status import ServiceStatusWrites
from vipcast.app.status_writes import WritePipeline
from vipcast.core.allocation import allocate_spec
from vipcast.core.gateway import translate
from vipcast.core.gateway.address import (
    INGRESS_GATEWAY_KEY,
    SUFFIX,
    GatewayServices,
    gateway_addresses,
    gateway_of,
    gateway_refusals,
)
from vipcast.core.gateway.certificates import certificate_refs
from vipcast.core.gateway.ingress import without_ingress_stand_ins
from vipcast.core.gateway.model import with_node_refusals
from vipcast.core.handoff import calico_hand_off
from vipcast.obs.pool_metrics import register_pool_metrics
from vipcast.obs.registry import CollectorRegistry
from vipcast.obs.status_server import StatusServer
from vipcast.sources.kube.announcements import (
    fold_reports,
    node_gateway_refusals,
)
from vipcast.sources.kube.client import ApiError, AsyncClient
from vipcast.sources.kube.conditions import (
    handed_off_condition,
    merged,
    password_condition,
)
from vipcast.sources.kube.gateway_status import write_status
from vipcast.sources.kube.handoff import write_calico
from vipcast.sources.kube.ingress_status import commit_ingress_addresses
from vipcast.sources.kube.leader import ElectionConfig, LeaderElector
from vipcast.sources.kube.named_secrets import NamedSecrets
from vipcast.sources.kube.ratelimit import TokenBucket
from vipcast.sources.kube.reflector import Reflector, snapshots
from vipcast.sources.kube.resources import (
    BGP_PEERS,
    CNI_SPEAKERS,
    CONTROLLER_KINDS,
    GATEWAY_KINDS,
    NODE_ANNOUNCEMENTS,
    NODES,
    Watched,
    secrets,
)
from vipcast.sources.kube.snapshot import Document, build_spec
from vipcast.sources.kube.status import (
    FIELD_MANAGER,
    EventRecorder,
    apply_conditions,
)
from vipcast.spec import Spec, claims

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerConfig:
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}")
    election: ElectionConfig = field(default_factory=ElectionConfig)
    #: the Services served (see :func:`vipcast.spec.claims`): None, class-less ones only
    load_balancer_class: str | None = None
    field_manager: str = FIELD_MANAGER
    #: reconcile at least this often even without changes (retries failed writes)
    resync: float = 30.0
    #: wait this long after a change for more changes before reconciling
    debounce: float = 0.05
    watch_timeout: int = 290
    #: Secrets (in the election namespace) that BGPPeers may name in ``passwordSecret``: the
    #: controller only checks they resolve, for the peers' ``PasswordResolved`` condition
    password_secrets: tuple[str, ...] = ()
    #: also read the Gateway API kinds and Ingresses and write Gateway/HTTPRoute status
    #: (the Gateway API CRDs must be installed)
    gateway_api: bool = False
    #: client-side limit on Service status writes (token bucket; qps <= 0: none), like
    #: client-go's --kube-api-qps/--kube-api-burst; see docs/scale.md for the cold-start cost
    write_qps: float = 50.0
    write_burst: int = 100
    #: Service status writes in flight at once (each with its Event), still under the limit
    #: above: one at a time left the cold start at the round-trip rate (docs/scale.md)
    write_concurrency: int = 8


@dataclass
class RoundReport:
    """What one reconcile round did (for logs, metrics and tests)."""

    leader: bool = False
    allocated: int = 0
    written: int = 0
    failed_writes: int = 0
    issues: int = 0
    config_stale: bool = False
    result: AllocationResult | None = None


class Controller(ServiceStatusWrites):
    config: ControllerConfig

    def __init__(self, client: AsyncClient, config: ControllerConfig | None = None,
                 kinds: tuple[Watched, ...] | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.client = client
        self.config = config or ControllerConfig()
        if kinds is None:
            # Nodes: which speakers' reports still count (a gone or NotReady node's do not)
            kinds = (*CONTROLLER_KINDS, NODES,
                     *secrets(self.config.election.namespace, self.config.password_secrets))
            if self.config.gateway_api:
                kinds = (*kinds, *GATEWAY_KINDS)
        self.dirty = asyncio.Event()
        self.reflectors = [
            Reflector(client, w, self.dirty.set, watch_timeout=self.config.watch_timeout)
            for w in kinds
        ]
        #: the TLS Secrets our Gateways and Ingresses name (and may name), one watch each
        self.tls_secrets = NamedSecrets(client, self.dirty.set)
        self.elector = LeaderElector(client, self.config.identity, self.config.election)
        self.events = EventRecorder(client, "vipcast-controller", self.config.identity)
        self.write_limit = TokenBucket(self.config.write_qps, self.config.write_burst)
        self.last_good: tuple[Document, ...] = ()
        #: each Gateway of ours as a stand-in Service: Services and Gateways share one
        #: allocation, so no address is handed to two things
        self.gateway_services = GatewayServices(self.config.load_balancer_class)
        #: what this leader wrote last round (wins over a status echo still in flight)
        self.memory: dict[str, tuple[str, ...]] = {}
        self.rounds = 0
        self.last_report = RoundReport()
        self.reported_issues: set[str] = set()
        #: Calico BGPConfiguration -> the serviceLoadBalancerIPs this leader wrote there
        self.calico_written: dict[str, list[dict[str, str]]] = {}
        #: the HandedOff condition last written per CNISpeaker (status, reason, message)
        self.cni_conditions: dict[str, tuple[str, str, str]] = {}
        #: the PasswordResolved condition last written per BGPPeer (status, reason, message)
        self.peer_conditions: dict[str, tuple[str, str, str]] = {}
        #: per pool (in use, capacity) of the last allocation this leader made; empty otherwise
        self.pool_usage: Mapping[str, tuple[int, int]] = {}
        if registry is not None:
            register_pool_metrics(registry, lambda: self.pool_usage)

    @property
    def synced(self) -> bool:
        return all(r.synced.is_set() for r in self.reflectors)

    async def run(self) -> None:
        self.tls_secrets.bind(asyncio.get_running_loop())
        try:
            async with asyncio.TaskGroup() as tg:
                for reflector in self.reflectors:
                    tg.create_task(reflector.run(), name=f"reflect-{reflector.kind}")
                tg.create_task(self.elector.run(), name="leader-election")
                tg.create_task(self._loop(), name="reconcile")
        finally:
            await self.tls_secrets.close()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.resync):
                    await self._wait_for_change()
            await asyncio.sleep(self.config.debounce)
            self.dirty.clear()
            self.elector.changed.clear()
            if not self.synced:
                continue
            report = await self.reconcile_once()
            if report.failed_writes:
                self.dirty.set()
                await asyncio.sleep(1.0)

    async def _wait_for_change(self) -> None:
        dirty = asyncio.ensure_future(self.dirty.wait())
        leader = asyncio.ensure_future(self.elector.changed.wait())
        try:
            await asyncio.wait({dirty, leader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            dirty.cancel()
            leader.cancel()

    async def reconcile_once(self) -> RoundReport:
        """One round: snapshot, validate, allocate, write (only when leading)."""
        self.rounds += 1
        report = RoundReport(leader=self.elector.is_leader)
        if not report.leader:
            self.memory.clear()  # a future leader term starts again from Service status
            self.calico_written.clear()
            self.cni_conditions.clear()
            self.pool_usage = {}
            self.last_report = report
            return report
        objects = snapshots([*self.reflectors, *self.tls_secrets.reflectors])
        reports = objects.pop(NODE_ANNOUNCEMENTS.kind, [])
        # the pure work of a round (validation, allocation) runs in a worker thread: at 50,000
        # Services it takes many seconds of CPU, and in the event loop it starved the Lease
        # renewals (5 s Lease: both replicas stepped down in turn, 3 writes in 4 minutes)
        outcome = await asyncio.to_thread(build_spec, objects, self.last_good)
        report.issues = len(outcome.issues)
        report.config_stale = outcome.config_stale
        for issue in outcome.issues:
            text = str(issue)
            if text not in self.reported_issues:
                if len(self.reported_issues) >= 4096:  # bounded: tenants can make many
                    self.reported_issues.clear()
                self.reported_issues.add(text)
                log.warning("config problem: %s", text)
        if outcome.spec is None:
            self.last_report = report
            return report
        if not outcome.config_stale:
            self.last_good = outcome.config
        await self._peer_password_conditions(outcome.spec)
        spec = outcome.spec
        if self.config.gateway_api:
            spec = self.gateway_services(spec)
            self.tls_secrets.want(certificate_refs(spec))
        cls = self.config.load_balancer_class
        # Services of another class (or class-less ones, when a class is configured) are
        # another load balancer's: never allocated, never written
        mine = replace(spec, services=tuple(
            s for s in spec.services
            if s.spec.type != "LoadBalancer" or claims(s.spec.load_balancer_class, cls)))
        result = await asyncio.to_thread(allocate_spec, mine, self.memory,
                                         load_balancer_class=cls)
        written: dict[str, tuple[str, ...]] = {}
        # only live nodes' reports count (after an L2 failover the dead node's stays behind)
        ready = {n.metadata.name for n in outcome.spec.nodes if n.ready}
        if self.config.gateway_api:
            written.update(await self._gateway_status(
                spec, result, report, objects.get("Ingress", []),
                node_gateway_refusals(reports, ready)))
        report.result = result
        self.pool_usage = result.pool_usage
        services = {f"{(s.get('metadata') or {}).get('namespace')}/"
                    f"{(s.get('metadata') or {}).get('name')}": s
                    for s in objects.get("Service", [])}
        for dropped in outcome.dropped:
            kind, _, key = dropped.partition("/")
            if kind == "Service" and key in services:
                why = "; ".join(i.message for i in outcome.issues if i.file == dropped)
                await self.events.emit(services[key], "Warning", "InvalidService", why)
        for gone in result.released:
            if gone.previous:
                log.info("released %s of deleted Service %s", ", ".join(gone.previous),
                         gone.service)
        nodes, seen = fold_reports(reports, ready)
        later: list[tuple[dict[str, object], str, str, str]] = []
        writes = WritePipeline(self.config.write_concurrency, report)
        try:
            await self._assign(result, services, nodes, seen, writes, written, later, report)
            await writes.drain()
        finally:
            writes.cancel()
        self.memory = written
        self.last_report = report
        await self._emit_batch(later)
        await self._calico_hand_off(spec, result)
        return report

    async def _calico_hand_off(self, spec: Spec, result: AllocationResult) -> None:
        """Calico's ``serviceLoadBalancerIPs`` for HandOff peers (docs/cni.md): one /32 or
        /128 per handed VIP, written when it changed; a missing BGPConfiguration is logged
        once and retried on the next round."""
        for name, entries in calico_hand_off(spec, result.current()).items():
            if self.calico_written.get(name) == entries or not self.elector.is_leader:
                continue
            problem = await write_calico(self.client, name, entries)
            if problem is None:
                self.calico_written[name] = entries
                log.info("Calico BGPConfiguration %s: %d serviceLoadBalancerIPs", name,
                         len(entries))
            elif problem not in self.reported_issues:
                self.reported_issues.add(problem)
                log.warning("hand-off to Calico: %s", problem)
            # the CNISpeakers that name it say how it went (kubectl describe cnispeaker)
            cond = handed_off_condition(name, len(entries), problem)
            for cni in spec.cni_speakers:
                target = cni.spec.hand_off
                if target is None or target.calico is None or \
                        target.calico.bgp_configuration != name:
                    continue
                key = (cond["status"], cond["reason"], cond["message"])
                if self.cni_conditions.get(cni.name) == key:
                    continue
                try:
                    await apply_conditions(self.client, CNI_SPEAKERS.resource, cni.name,
                                           merged([], [cond], None), self.config.field_manager)
                except (ApiError, httpx.HTTPError, OSError) as exc:
                    log.warning("CNISpeaker %s: condition not written: %s", cni.name, exc)
                    continue
                self.cni_conditions[cni.name] = key

    async def _gateway_status(self, spec: Spec, result: AllocationResult,
                              report: RoundReport, ingresses: list[dict[str, object]],
                              refused: dict[str, str]) -> dict[str, tuple[str, ...]]:
        """Gateway and HTTPRoute status from the translation at the allocated Gateway
        addresses: ``status.addresses`` commits them (the speakers announce only committed
        addresses), ``Programmed`` says why a Gateway got none, or which nodes' Envoys refuse
        the configuration (``refused``: node -> Envoy's error, from the nodes' reports); the
        Ingress Gateway's address is committed to every served Ingress's
        ``status.loadBalancer.ingress``. Returns the
        stand-ins' addresses committed (this leader's memory of them); the proxy model
        itself is the speakers' business."""
        current = result.current()
        before = {k: ips for k, ips in self.memory.items() if gateway_of(k) is not None}
        if not self.tls_secrets.synced:
            # a certificate's Secret not read yet: no ResolvedRefs verdict on it this round
            # (its first list marks the state dirty)
            return before
        addresses = gateway_addresses(current)
        translation = translate(spec, "controller", addresses,
                                refusals=gateway_refusals(result.assignments))
        if refused:
            translation = replace(translation, gateways=with_node_refusals(
                translation.gateways, refused))
        ingress_gw = next((g for g in translation.gateways if g.key == INGRESS_GATEWAY_KEY),
                          None)
        try:
            await write_status(self.client, without_ingress_stand_ins(translation),
                               events=self.events)
        except (ApiError, httpx.HTTPError, OSError) as exc:
            report.failed_writes += 1
            log.warning("gateway status not written: %s", exc)
            return before  # what was committed before stays this leader's memory
        committed = {k: ips for k, ips in current.items() if gateway_of(k) is not None}
        written, failed = await commit_ingress_addresses(
            self.client, self.events, ingresses, {i.key for i in spec.served_ingresses()},
            ingress_gw, self.config.field_manager, leading=lambda: self.elector.is_leader)
        report.written += written
        report.failed_writes += failed
        if failed or not self.elector.is_leader:
            stand_in = INGRESS_GATEWAY_KEY + SUFFIX
            committed.pop(stand_in, None)
            if stand_in in before:
                committed[stand_in] = before[stand_in]
        # every Gateway of the translation had its status written (or was gone)
        return committed

    async def _peer_password_conditions(self, spec: Spec) -> None:
        """Each BGPPeer with a ``passwordSecret`` gets ``vipcast.io/PasswordResolved``: a
        missing or broken Secret stops that peer only, and says so on the peer."""
        for peer in spec.peers:
            if peer.spec.password_secret is None:
                continue
            cond = password_condition(spec, peer, self.config.election.namespace,
                                      self.config.password_secrets)
            key = (cond["status"], cond["reason"], cond["message"])
            if self.peer_conditions.get(peer.name) == key or not self.elector.is_leader:
                continue
            stamped = merged([], [cond], None)
            try:
                await apply_conditions(self.client, BGP_PEERS.resource, peer.name, stamped,
                                       self.config.field_manager)
            except (ApiError, httpx.HTTPError, OSError) as exc:
                log.warning("condition of BGPPeer %s not written: %s", peer.name, exc)
                continue
            self.peer_conditions[peer.name] = key

def controller_status(ctl: Controller) -> dict[str, object]:
    """The controller's /status document (no addresses or Service names)."""
    report = ctl.last_report
    return {"identity": ctl.config.identity, "leader": ctl.elector.is_leader,
            "synced": ctl.synced, "rounds": ctl.rounds,
            "status_writes": {"taken": ctl.write_limit.taken,
                              "waited_s": round(ctl.write_limit.waited, 3),
                              "qps": ctl.config.write_qps, "burst": ctl.config.write_burst},
            "last_round": {"allocated": report.allocated, "written": report.written,
                           "failed_writes": report.failed_writes, "issues": report.issues,
                           "config_stale": report.config_stale},
            "pools": {name: {"used": used, "total": total}
                      for name, (used, total) in sorted(ctl.pool_usage.items())}}


async def run_controller(
    client: AsyncClient,
    config: ControllerConfig | None = None,
    metrics: tuple[str, int] | None = None,
    health: tuple[str, int] | None = None,
    serving: Callable[[tuple[str, int]], None] | None = None,
) -> None:
    """Composition root used by ``vipcast controller``. With ``metrics`` and/or ``health``,
    serves /metrics (pool capacity and use), /status, /healthz (the loop answers) and /readyz
    (every cache synced, for the pod's probes) on each address given. Each address is logged
    and handed to ``serving`` once listening (port 0: the port the kernel chose)."""
    registry = CollectorRegistry()
    controller = Controller(client, config, registry=registry)
    servers = []
    for address in dict.fromkeys(a for a in (metrics, health) if a is not None):
        server = StatusServer(registry, lambda: controller_status(controller),
                              ready=lambda: controller.synced)
        bound = await server.start(*address)
        servers.append(server)
        log.info("serving /metrics, /status, /healthz and /readyz on %s port %d", *bound)
        if serving is not None:
            serving(bound)
    try:
        await controller.run()
    finally:
        for server in servers:
            await server.stop()
