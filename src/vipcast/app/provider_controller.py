"""External load balancers in Kubernetes: one reconcile pass over every LoadBalancerProvider.

Each pass reads the providers, Services, EndpointSlices, Nodes and the credential Secrets,
then per provider: puts the finalizer on every Service of its class before its load balancer
is created; ensures every desired load balancer (a resync: drift is repaired); deletes those
no Service wants, and then lets deleted Services go (finalizer removed); writes each
Service's ``status.loadBalancer.ingress`` (ipMode VIP or Proxy) and the
``vipcast.io/ExternalLoadBalancer`` condition; and records an Event for each decision.

``run`` repeats the pass every ``resync`` seconds, sooner when a driver asks to retry: the
driver's ``retry_after`` is the base of an exponential backoff over consecutive failing passes
(capped at ``resync``, jittered by :func:`vipcast.core.backoff.backoff_delay` with the ``rng``
passed in). With an ``elector`` (a Lease, as the main controller's) only the leader passes,
and it asks ``elector.holds()`` right before every write -- to a load balancer, a finalizer,
a status, an Event -- so a paused leader that wakes after a standby took over writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from vipcast.app.providers import DriverFactory, Fenced, build_driver, sync_provider
from vipcast.core.backoff import backoff_delay
from vipcast.core.external import lb_name
from vipcast.providers.port import LoadBalancerDriver
from vipcast.sources.kube.conditions import merged
from vipcast.sources.kube.leader import LeaderElector
from vipcast.sources.kube.provider_status import (
    FINALIZER,
    apply_external_status,
    external_condition,
    get_service,
    read_objects,
    set_finalizer,
)
from vipcast.sources.kube.snapshot import Document, build_spec
from vipcast.sources.kube.status import EventRecorder
from vipcast.spec import ANNOTATION_SHARED_LB, LoadBalancerProvider, Service, Spec
from vipcast.spec.checks import credential_problems
from vipcast.spec.errors import Issue

log = logging.getLogger(__name__)


@dataclass
class PassResult:
    ensured: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    retry_after: float | None = None
    #: leadership was lost during the pass: it stopped before its next write
    fenced: bool = False


#: the resync and retry delays are shortened by up to this share (never lengthened)
JITTER = 0.25
#: the first retry after a pass that failed as a whole (API server unreachable, ...)
_PASS_FAILED_RETRY = 2.0


class ProviderController:
    def __init__(self, client: Any, namespace: str, *, factory: DriverFactory | None = None,
                 resync: float = 30.0, elector: LeaderElector | None = None,
                 rng: random.Random | None = None) -> None:
        """``elector`` None: this controller always writes (one replica, or a test's pass);
        ``rng`` draws the jitter (seed it for repeatable delays); the default ``factory``
        builds the drivers with the elector's identity as their User-Agent."""
        self.client = client
        self.namespace = namespace
        agent = "vipcast-providers" + (f"/{elector.identity}" if elector is not None else "")
        self.factory: DriverFactory = factory or functools.partial(build_driver,
                                                                   user_agent=agent)
        self.resync = resync
        self.elector = elector
        self.rng = rng if rng is not None else random.Random()
        self.events = EventRecorder(client, "vipcast-providers",
                                    elector.identity if elector is not None else None)
        #: consecutive passes that asked for a retry (the backoff's attempt)
        self.failed_passes = 0
        #: our own objects as last validated (a broken edit falls back to them)
        self.last_good: tuple[Document, ...] = ()
        #: provider -> (what it was built from, driver); kept across passes by ``run``
        self._drivers: dict[str, tuple[str, LoadBalancerDriver]] = {}
        self.keep_drivers = False

    def may_write(self) -> bool:
        """True unless an elector says this replica does not (or no longer surely) lead."""
        return self.elector is None or self.elector.holds()

    def _fence(self) -> None:
        if not self.may_write():
            raise Fenced("leadership lost")

    def next_wait(self, result: PassResult | None) -> float:
        """Seconds until the next pass after ``result`` (None: the pass failed as a whole).

        Nothing to retry: ``resync`` less up to 25 % jitter. Otherwise the driver's
        ``retry_after`` doubled for each consecutive failing pass, capped at ``resync``."""
        draw = self.rng.random()
        if result is not None and result.retry_after is None:
            self.failed_passes = 0
            return backoff_delay(0, self.resync, self.resync, JITTER, draw)
        base = _PASS_FAILED_RETRY if result is None or result.retry_after is None \
            else result.retry_after
        delay = backoff_delay(self.failed_passes, max(base, 0.01), self.resync, JITTER, draw)
        self.failed_passes += 1
        return delay

    async def reconcile(self) -> PassResult:
        """One pass (see the module docstring); stops at the first write it may no longer do
        (``fenced``)."""
        result = PassResult()
        try:
            await self._reconcile(result)
        except Fenced:
            log.warning("external load balancers: leadership lost; pass stopped before a write")
            result.fenced = True
        return result

    async def _reconcile(self, result: PassResult) -> None:
        objs = await read_objects(self.client, self.namespace)
        raw_services = objs["Service"]
        # as the main controller: a bad core object (a tenant's Service) is left out, a bad
        # one of ours falls back to the last good set; nothing usable -> nothing is done
        outcome = build_spec(objs, self.last_good)
        for issue in outcome.issues:
            log.warning("external load balancers: %s", issue)
        if outcome.spec is None:
            return
        spec = outcome.spec
        if not outcome.config_stale:
            self.last_good = outcome.config
        raw = {f"{s['metadata'].get('namespace', 'default')}/{s['metadata']['name']}": s
               for s in raw_services}
        served = {p.load_balancer_class for p in spec.providers}
        unreadable = await self._unreadable(spec, raw, outcome.dropped, outcome.issues)
        for svc in spec.services:  # deleted, ours, and no provider left to clean up after it
            if (svc.metadata.deletion_timestamp is not None and FINALIZER in
                    svc.metadata.finalizers and svc.spec.load_balancer_class not in served):
                self._fence()
                await set_finalizer(self.client, await self._fresh(svc), False)
                await self.events.emit(raw[svc.key], "Warning", "ProviderGone",
                                       f"no LoadBalancerProvider serves class "
                                       f"{svc.spec.load_balancer_class}: finalizer removed; "
                                       "an external load balancer may be left behind")
                result.released.append(svc.key)
        unusable = {i.name: i for i in credential_problems(spec)}
        for issue in unusable.values():
            log.warning("external load balancers: %s", issue)
        for provider in spec.providers:
            cls = provider.load_balancer_class
            mine = [s for s in spec.services if s.spec.type == "LoadBalancer"
                    and s.spec.load_balancer_class == cls]
            if provider.name in unusable:
                # its credentials Secret is missing or broken: this provider only waits, and
                # its Services say why (nothing is written to the product)
                for svc in mine:
                    if svc.metadata.deletion_timestamp is None:
                        self._fence()
                        await self._unusable(svc, raw[svc.key], provider,
                                             unusable[provider.name].message)
                continue
            for svc in mine:  # the finalizer before the load balancer exists
                if svc.metadata.deletion_timestamp is None:
                    self._fence()
                    await set_finalizer(self.client, raw[svc.key], True)
            driver = await self._driver(provider, spec)
            try:
                report = await sync_provider(spec, provider, driver, may_write=self.may_write,
                                             frozen=unreadable.get(provider.name, set()))
            finally:
                if not self.keep_drivers:
                    await self._close_drivers()
            retry_names = {name for name, _ in report.retries}
            gone = {d.name for d in report.deleted}
            for svc in mine:
                name = lb_name(provider.spec.options.cluster_name, svc)
                if svc.metadata.deletion_timestamp is not None:
                    if name in retry_names or (name not in gone and "*" in retry_names):
                        continue
                    self._fence()
                    await set_finalizer(self.client, await self._fresh(svc), False)
                    await self.events.emit(raw[svc.key], "Normal", "DeletedLoadBalancer",
                                           f"{provider.spec.driver} load balancer {name} "
                                           "deleted")
                    result.released.append(svc.key)
                    continue
                self._fence()
                await self._status(svc, raw[svc.key], provider, name, report)
            result.ensured += [a.name for a in report.applied]
            result.deleted += sorted(gone)
            result.refused += [r.service for r in report.refused]
            for _, retry in report.retries:
                after = retry.retry_after
                result.retry_after = after if result.retry_after is None else min(
                    result.retry_after, after)
        # providers gone, or waiting for their credentials: their kept drivers go
        await self._close_drivers(keep={p.name for p in spec.providers
                                        if p.name not in unusable})

    async def _fresh(self, svc: Service) -> dict[str, Any]:
        return await get_service(self.client, svc.metadata.namespace or "default",
                                 svc.metadata.name)

    async def _driver(self, provider: LoadBalancerProvider, spec: Spec
                      ) -> LoadBalancerDriver:
        """The provider's driver, kept from the last pass while the provider and its Secret
        are unchanged (its session, and with Keystone its token, are reused: one token per
        credential until it expires, not one per pass)."""
        ref = provider.spec.credentials_secret
        secret = spec.secret(ref.name, ref.namespace) if ref is not None else None
        key = repr((provider.spec.model_dump(mode="json"),
                    secret.model_dump(mode="json") if secret is not None else None))
        held = self._drivers.get(provider.name)
        if held is not None and held[0] == key:
            return held[1]
        if held is not None:
            await _close(held[1])
        driver = self.factory(provider, spec)
        self._drivers[provider.name] = (key, driver)
        return driver

    async def _close_drivers(self, keep: Collection[str] = ()) -> None:
        for name in [n for n in self._drivers if n not in keep]:
            await _close(self._drivers.pop(name)[1])

    async def _unreadable(self, spec: Spec, raw: dict[str, dict[str, Any]],
                          dropped: Sequence[str], issues: Sequence[Issue]
                          ) -> dict[str, set[str]]:
        """Services left out as invalid: per provider, the load balancers they may have
        (left exactly as they are this pass: never deleted, never half-changed), and a
        condition on each such Service of a provider's class naming the problem."""
        out: dict[str, set[str]] = {}
        for source in dropped:
            kind, _, key = source.partition("/")
            svc = raw.get(key) if kind == "Service" else None
            if svc is None:
                continue
            cls = (svc.get("spec") or {}).get("loadBalancerClass")
            provider = spec.provider_for(cls if isinstance(cls, str) else None)
            if provider is None:
                continue
            meta = svc.get("metadata") or {}
            shared = (meta.get("annotations") or {}).get(ANNOTATION_SHARED_LB)
            cluster = provider.spec.options.cluster_name
            out.setdefault(provider.name, set()).add(
                f"kube_shared_{cluster}_{shared}" if shared else
                f"kube_service_{cluster}_{meta.get('namespace', 'default')}_{meta.get('name')}")
            why = "; ".join(f"{i.field}: {i.message}" for i in issues if i.file == source)
            message = (f"LoadBalancerProvider {provider.name}: the Service is invalid, its "
                       f"external load balancer is left as it is: {why or 'see the logs'}")
            self._fence()
            await self.events.emit(svc, "Warning", "InvalidService", message)
            existing = ((svc.get("status") or {}).get("conditions")) or ()
            await apply_external_status(
                self.client, str(meta.get("namespace", "default")), str(meta.get("name")),
                _kept_ingress(svc),
                merged(existing, [external_condition(False, "InvalidService", message)], None))
        return out

    async def _unusable(self, svc: Service, raw: dict[str, Any],
                        provider: LoadBalancerProvider, why: str) -> None:
        message = (f"LoadBalancerProvider {provider.name} ({provider.spec.driver}): "
                   f"spec.credentialsSecret: {why}")
        cond = external_condition(False, "CredentialsUnusable", message)
        await self.events.emit(raw, "Warning", "CredentialsUnusable", message)
        existing = ((raw.get("status") or {}).get("conditions")) or ()
        await apply_external_status(
            self.client, svc.metadata.namespace or "default", svc.metadata.name,
            _kept_ingress(raw), merged(existing, [cond], None))

    async def _status(self, svc: Service, raw: dict[str, Any], provider: LoadBalancerProvider,
                      name: str, report: Any) -> None:
        driver = provider.spec.driver
        refusal = next((r for r in report.refused if r.service == svc.key), None)
        retry = next((r for n, r in report.retries if n == name), None)
        ingress: Sequence[tuple[str, str]] = ()
        if refusal is not None:
            cond = external_condition(False, str(refusal.why), refusal.message)
            await self.events.emit(raw, "Warning", str(refusal.why), refusal.message)
        elif retry is not None:
            # a failure to reach or change the product says nothing about the load balancer
            # that is there: its address stays in the status (DNS and clients keep it)
            ingress = _kept_ingress(raw)
            who = f"LoadBalancerProvider {provider.name} ({driver})"
            cond = external_condition(False, str(retry.failure),
                                      f"{who}: {retry.message} (retry in "
                                      f"{retry.retry_after:.0f}s)")
            await self.events.emit(raw, "Warning", "SyncLoadBalancerFailed",
                                   f"{who}: {retry.failure}: {retry.message}")
        elif svc.key in report.ingress:
            vip, mode = report.ingress[svc.key]
            ingress = ((vip, mode),) if vip else ()
            cond = external_condition(True, "Ensured", f"{driver} load balancer {name}"
                                      + (f" with VIP {vip}" if vip else ""))
            await self.events.emit(raw, "Normal", "EnsuredLoadBalancer",
                                   f"{driver} load balancer {name}"
                                   + (f" with VIP {vip}" if vip else ""))
        else:
            return
        existing = ((raw.get("status") or {}).get("conditions")) or ()
        await apply_external_status(
            self.client, svc.metadata.namespace or "default", svc.metadata.name, ingress,
            merged(existing, [cond], None))

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile until ``stop`` (see the module docstring for the pacing and the Lease)."""
        campaign = asyncio.create_task(self.elector.run(), name="providers-leader-election") \
            if self.elector is not None else None
        self.keep_drivers = True
        try:
            while not stop.is_set():
                if self.elector is not None and not self.elector.is_leader:
                    self.failed_passes = 0
                    await self._sleep(stop, self.resync, wake_on_leadership=True)
                    continue
                try:
                    wait = self.next_wait(await self.reconcile())
                except Exception:
                    log.exception("external load balancers: pass failed")
                    wait = self.next_wait(None)
                await self._sleep(stop, wait, wake_on_leadership=True)
        finally:
            self.keep_drivers = False
            await self._close_drivers()
            if campaign is not None:
                campaign.cancel()  # a leader gives the Lease up on the way out
                with contextlib.suppress(asyncio.CancelledError):
                    await campaign

    async def _sleep(self, stop: asyncio.Event, seconds: float, *,
                     wake_on_leadership: bool) -> None:
        waits = [asyncio.ensure_future(stop.wait())]
        if wake_on_leadership and self.elector is not None:
            self.elector.changed.clear()
            waits.append(asyncio.ensure_future(self.elector.changed.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


async def _close(driver: LoadBalancerDriver) -> None:
    close = getattr(driver, "close", None)
    if close is not None:
        await close()


def _kept_ingress(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The (ip, ipMode) pairs the Service's status has now."""
    lb = ((raw.get("status") or {}).get("loadBalancer") or {})
    return tuple((str(i["ip"]), str(i.get("ipMode") or "VIP"))
                 for i in lb.get("ingress") or () if i.get("ip"))


__all__ = ["FINALIZER", "PassResult", "ProviderController"]
