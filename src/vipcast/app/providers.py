"""Composition of the external load balancers: build each provider's driver, compute the desired
load balancers from a Spec, ensure them, and delete the ones no Service wants any more.

``sync_providers`` is one pass (what ``vipcast providers sync`` runs from the file set, and what
a resync repeats: drift is repaired because every pass ensures the whole load balancer).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from urllib.parse import urlparse

from vipcast.core.external import ExternalPlan, Refusal, desired_external
from vipcast.providers.as3.driver import AS3Driver
from vipcast.providers.haproxy.driver import HAProxyDriver
from vipcast.providers.octavia.driver import OctaviaDriver
from vipcast.providers.port import Applied, LoadBalancerDriver, Retry
from vipcast.spec import LoadBalancerProvider, Spec
from vipcast.spec.keystone import keystone_credential


@dataclass
class ProviderReport:
    provider: str
    applied: list[Applied] = field(default_factory=list)
    deleted: list[Applied] = field(default_factory=list)
    retries: list[tuple[str, Retry]] = field(default_factory=list)
    refused: tuple[Refusal, ...] = ()
    #: Service -> (VIP, ipMode) for status.loadBalancer.ingress
    ingress: dict[str, tuple[str | None, str]] = field(default_factory=dict)


DriverFactory = Callable[[LoadBalancerProvider, Spec], LoadBalancerDriver]


class Fenced(Exception):
    """The writer lost the right to write (its leadership) in the middle of a pass: nothing
    more was written; the new leader's passes carry on."""


def _always() -> bool:
    return True


def build_driver(provider: LoadBalancerProvider, spec: Spec, *,
                 user_agent: str = "vipcast") -> LoadBalancerDriver:
    """The driver of a provider (credentials read from the Secret the provider names);
    ``user_agent`` names the writer to the product (its logs)."""
    ref = provider.spec.credentials_secret
    secret = spec.secret_value(ref.name, ref.namespace, ref.key) \
        if ref and provider.spec.driver == "as3" else None
    if provider.spec.driver == "haproxy":
        return HAProxyDriver(urlparse(provider.spec.endpoint).path)
    if provider.spec.driver == "as3":
        return AS3Driver(provider.spec.endpoint, provider.spec.options.tenant,
                         password=secret or "", user_agent=user_agent)
    opts = provider.spec.options
    credential = None
    if ref is not None:  # credential_problems() has checked it: this cannot raise
        found = spec.secret(ref.name, ref.namespace)
        credential = keystone_credential(found) if found is not None else None
    return OctaviaDriver(provider.spec.endpoint,
                         project_id=opts.project_id or (None if credential else "vipcast"),
                         vip_subnet_id=opts.vip_subnet_id, vip_network_id=opts.vip_network_id,
                         credential=credential, user_agent=user_agent)


async def sync_provider(spec: Spec, provider: LoadBalancerProvider,
                        driver: LoadBalancerDriver, *,
                        may_write: Callable[[], bool] = _always,
                        frozen: Collection[str] = ()) -> ProviderReport:
    """Ensure the provider's load balancers, then delete the ones no Service wants; the
    ``frozen`` ones (a Service of theirs could not be read) are neither changed nor deleted.

    Raises:
        Fenced: ``may_write()`` answered False before a write (leadership lost mid-pass).
    """
    report = ProviderReport(provider.name)

    def fence() -> None:
        if not may_write():
            raise Fenced(provider.name)

    plan: ExternalPlan = desired_external(spec, provider, driver.capabilities)
    report.refused = plan.refused
    for lb in plan.load_balancers:
        if lb.name in frozen:
            continue
        fence()
        outcome = await driver.ensure(lb)
        if isinstance(outcome, Retry):
            report.retries.append((lb.name, outcome))
            continue
        report.applied.append(outcome)
        for key in lb.services:
            report.ingress[key] = (outcome.vip, outcome.ip_mode)
    names = await driver.names()
    if isinstance(names, Retry):
        report.retries.append(("*", names))
        return report
    wanted = {lb.name for lb in plan.load_balancers}
    for name in names:
        if name in wanted or name in frozen:
            continue
        fence()
        outcome = await driver.delete(name)
        if isinstance(outcome, Retry):
            report.retries.append((name, outcome))
        else:
            report.deleted.append(outcome)
    return report


async def sync_providers(spec: Spec, factory: DriverFactory = build_driver
                         ) -> list[ProviderReport]:
    """One pass over every provider of the Spec."""
    reports = []
    for provider in spec.providers:
        driver = factory(provider, spec)
        try:
            reports.append(await sync_provider(spec, provider, driver))
        finally:
            close = getattr(driver, "close", None)
            if close is not None:
                await close()
    return reports
