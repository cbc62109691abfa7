"""External load balancers in Kubernetes: one reconcile pass over every LoadBalancerProvider.

Each pass reads the providers, Services, EndpointSlices, Nodes and the credential Secrets,
then per provider: puts the finalizer on every Service of its class before its load balancer
is created; ensures every desired load balancer (a resync: drift is repaired); deletes those
no Service wants, and then lets deleted Services go (finalizer removed); writes each
Service's ``status.loadBalancer.ingress`` (ipMode VIP or Proxy) and the
``vipcast.io/ExternalLoadBalancer`` condition; and records an Event for each decision.
``run`` repeats the pass every ``resync`` seconds (sooner when a driver asks to retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vipcast.app.providers import DriverFactory, build_driver, sync_provider
from vipcast.core.external import lb_name
from vipcast.sources.kube.conditions import merged
from vipcast.sources.kube.provider_status import (
    FINALIZER,
    apply_external_status,
    external_condition,
    get_service,
    read_objects,
    set_finalizer,
)
from vipcast.sources.kube.snapshot import documents
from vipcast.sources.kube.status import EventRecorder
from vipcast.spec import Service, SpecError, load_documents
from vipcast.spec.checks import credential_problems

log = logging.getLogger(__name__)


@dataclass
class PassResult:
    ensured: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    retry_after: float | None = None


class ProviderController:
    def __init__(self, client: Any, namespace: str, *, factory: DriverFactory = build_driver,
                 resync: float = 30.0) -> None:
        self.client = client
        self.namespace = namespace
        self.factory = factory
        self.resync = resync
        self.events = EventRecorder(client, "vipcast-providers")

    async def reconcile(self) -> PassResult:
        """One pass (see the module docstring)."""
        result = PassResult()
        objs = await read_objects(self.client, self.namespace)
        raw_services = objs["Service"]
        try:
            spec = load_documents(documents(objs))
        except SpecError as exc:
            for issue in exc.issues:
                log.warning("external load balancers: %s", issue)
            return result
        raw = {f"{s['metadata'].get('namespace', 'default')}/{s['metadata']['name']}": s
               for s in raw_services}
        served = {p.load_balancer_class for p in spec.providers}
        for svc in spec.services:  # deleted, ours, and no provider left to clean up after it
            if (svc.metadata.deletion_timestamp is not None and FINALIZER in
                    svc.metadata.finalizers and svc.spec.load_balancer_class not in served):
                await set_finalizer(self.client, await self._fresh(svc), False)
                await self.events.emit(raw[svc.key], "Warning", "ProviderGone",
                                       f"no LoadBalancerProvider serves class "
                                       f"{svc.spec.load_balancer_class}: finalizer removed; "
                                       "an external load balancer may be left behind")
                result.released.append(svc.key)
        unusable = {i.name for i in credential_problems(spec)}
        for issue in credential_problems(spec):
            log.warning("external load balancers: %s", issue)
        for provider in spec.providers:
            if provider.name in unusable:
                continue  # its credentials Secret is missing: this provider only waits
            cls = provider.load_balancer_class
            mine = [s for s in spec.services if s.spec.type == "LoadBalancer"
                    and s.spec.load_balancer_class == cls]
            for svc in mine:  # the finalizer before the load balancer exists
                if svc.metadata.deletion_timestamp is None:
                    await set_finalizer(self.client, raw[svc.key], True)
            driver = self.factory(provider, spec)
            try:
                report = await sync_provider(spec, provider, driver)
            finally:
                close = getattr(driver, "close", None)
                if close is not None:
                    await close()
            retry_names = {name for name, _ in report.retries}
            gone = {d.name for d in report.deleted}
            for svc in mine:
                name = lb_name(provider.spec.options.cluster_name, svc)
                if svc.metadata.deletion_timestamp is not None:
                    if name in retry_names or (name not in gone and "*" in retry_names):
                        continue
                    await set_finalizer(self.client, await self._fresh(svc), False)
                    await self.events.emit(raw[svc.key], "Normal", "DeletedLoadBalancer",
                                           f"{provider.spec.driver} load balancer {name} "
                                           "deleted")
                    result.released.append(svc.key)
                    continue
                await self._status(svc, raw[svc.key], provider.spec.driver, name, report)
            result.ensured += [a.name for a in report.applied]
            result.deleted += sorted(gone)
            result.refused += [r.service for r in report.refused]
            for _, retry in report.retries:
                after = retry.retry_after
                result.retry_after = after if result.retry_after is None else min(
                    result.retry_after, after)
        return result

    async def _fresh(self, svc: Service) -> dict[str, Any]:
        return await get_service(self.client, svc.metadata.namespace or "default",
                                 svc.metadata.name)

    async def _status(self, svc: Service, raw: dict[str, Any], driver: str, name: str,
                      report: Any) -> None:
        refusal = next((r for r in report.refused if r.service == svc.key), None)
        retry = next((r for n, r in report.retries if n == name), None)
        ingress: Sequence[tuple[str, str]] = ()
        if refusal is not None:
            cond = external_condition(False, str(refusal.why), refusal.message)
            await self.events.emit(raw, "Warning", str(refusal.why), refusal.message)
        elif retry is not None:
            cond = external_condition(False, str(retry.failure),
                                      f"{retry.message} (retry in {retry.retry_after:.0f}s)")
            await self.events.emit(raw, "Warning", "SyncLoadBalancerFailed",
                                   f"{driver}: {retry.failure}: {retry.message}")
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
        """Reconcile until ``stop``: every ``resync`` s, sooner (with jitter) on a retry."""
        while not stop.is_set():
            try:
                result = await self.reconcile()
                wait = self.resync if result.retry_after is None else min(
                    self.resync, result.retry_after)
            except Exception:
                log.exception("external load balancers: pass failed")
                wait = self.resync
            wait *= random.uniform(0.8, 1.2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)


__all__ = ["FINALIZER", "PassResult", "ProviderController"]
