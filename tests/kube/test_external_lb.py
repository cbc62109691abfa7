"""External load balancers on the real API server: the finalizer
``service.kubernetes.io/load-balancer-cleanup`` (the LB is gone before the Service is),
``status.loadBalancer.ingress`` with ipMode, the ``vipcast.io/ExternalLoadBalancer`` condition
and Events, a resync that repairs drift, and a refused Service named. The provider is the AS3
driver against the local schema-validating AS3 stand-in (tests/providers/as3_server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError
from lightkube.resources.core_v1 import Node, Secret, Service
from lightkube.types import PatchType

from vipcast.app.provider_controller import ProviderController
from vipcast.sources.kube.provider_status import EXTERNAL_LB, FINALIZER

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import IPAddressPool, client, event_reasons, eventually
from .provider_objects import (
    Provider,
    condition,
    create_as3_provider,
    create_ready_node,
    delete_cluster_scoped,
    password_secret,
    provider,
    provider_service,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "providers"))
from as3_server import AS3Service

pytestmark = pytest.mark.slow


def test_finalizer_status_conditions_events_and_cleanup(vipcast_crds: Cluster,
                                                        namespace: str) -> None:
    async def go() -> None:
        as3 = AS3Service()
        await as3.start()
        c = client(vipcast_crds.kubeconfig, namespace)
        ctl = ProviderController(c, namespace)
        name = f"f5-{namespace}"
        try:
            await create_ready_node(c, f"x-{namespace}", "10.0.0.1")
            await c.create(password_secret("f5", namespace))
            await create_as3_provider(c, name, namespace, as3.url, ["198.51.100.96/30"],
                                      cluster_name="c1")
            await c.create(provider_service("web", namespace, name))
            await c.create(provider_service("sig", namespace, name, "SCTP"))

            result = await ctl.reconcile()
            lb = f"kube_service_c1_{namespace}_web"
            assert result.ensured == [lb]
            svc = (await c.get(Service, "web", namespace=namespace)).to_dict()
            assert FINALIZER in svc["metadata"]["finalizers"]
            (ingress,) = svc["status"]["loadBalancer"]["ingress"]
            assert ingress["ipMode"] == "VIP" and ingress["ip"].startswith("198.51.100.9")
            cond = condition(svc, EXTERNAL_LB)
            assert cond["status"] == "True" and cond["reason"] == "Ensured"
            assert "EnsuredLoadBalancer" in await event_reasons(c, "web", namespace)
            members = as3.tenants[namespace][lb]["pool-tcp-80"]["members"]
            assert {"servicePort": 30080, "serverAddresses": ["10.0.0.1"], "ratio": 1,
                    "remark": f"x-{namespace}", "adminState": "enable"} in members

            refused = (await c.get(Service, "sig", namespace=namespace)).to_dict()
            cond = condition(refused, EXTERNAL_LB)
            assert cond["status"] == "False" and cond["reason"] == "ProtocolUnsupported"
            assert "SCTP" in cond["message"]
            assert "ProtocolUnsupported" in await event_reasons(c, "sig", namespace)

            # drift behind vipcast's back, repaired by the next pass (resync)
            as3.tenants[namespace][lb]["pool-tcp-80"]["members"] = []
            await ctl.reconcile()
            assert as3.tenants[namespace][lb]["pool-tcp-80"]["members"]

            # delete: the finalizer holds the Service until the LB is gone
            await c.delete(Service, "web", namespace=namespace)
            held = (await c.get(Service, "web", namespace=namespace)).to_dict()
            assert held["metadata"].get("deletionTimestamp")
            result = await ctl.reconcile()
            assert result.deleted == [lb] and result.released == [f"{namespace}/web"]
            assert namespace not in as3.tenants or lb not in as3.tenants[namespace]
            names = [s.metadata.name async for s in c.list(Service, namespace=namespace)]
            assert "web" not in names
            assert not as3.invalid
        finally:
            await c.delete(Service, "sig", namespace=namespace)
            await ctl.reconcile()
            await as3.stop()
            # cluster-scoped objects outlive the test's namespace: every later test's
            # controller would read them
            await delete_cluster_scoped(c, (Provider, name), (IPAddressPool, name),
                                        (Node, f"x-{namespace}"))
            await c.close()
    run(go(), timeout=120)


def test_an_unreachable_provider_is_a_condition_and_a_retry(vipcast_crds: Cluster,
                                                            namespace: str) -> None:
    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        ctl = ProviderController(c, namespace)
        try:
            await c.create(provider(f"f5-{namespace}", "as3", "http://127.0.0.1:9",
                                    {"tenant": namespace}))
            svc = provider_service("web", namespace, f"f5-{namespace}").to_dict()
            svc["spec"]["loadBalancerIP"] = "198.51.100.77"
            await c.create(Service.from_dict(svc))
            result = await ctl.reconcile()
            assert result.ensured == [] and result.retry_after is not None
            got = (await c.get(Service, "web", namespace=namespace)).to_dict()
            assert FINALIZER in got["metadata"]["finalizers"]
            cond = condition(got, EXTERNAL_LB)
            assert cond["status"] == "False" and cond["reason"] == "Unreachable"
            assert "127.0.0.1:9" in cond["message"]
            assert f"LoadBalancerProvider f5-{namespace} (as3)" in cond["message"]
            assert "SyncLoadBalancerFailed" in await event_reasons(c, "web", namespace)
            assert not (got["status"].get("loadBalancer") or {}).get("ingress")
            # the provider is removed, then the Service: the finalizer must not hold it forever
            await c.delete(Provider, f"f5-{namespace}")
            await c.delete(Service, "web", namespace=namespace)
            result = await ctl.reconcile()
            assert result.released == [f"{namespace}/web"]
            assert "ProviderGone" in await event_reasons(c, "web", namespace)
            names = [s.metadata.name async for s in c.list(Service, namespace=namespace)]
            assert "web" not in names
        finally:
            await c.close()
    run(go(), timeout=120)


def test_unusable_credentials_are_on_the_service_and_a_busy_provider_keeps_the_address(
        vipcast_crds: Cluster, namespace: str) -> None:
    """A provider whose credentials Secret is missing writes nothing to the product and says
    so on each of its Services (condition + Event naming the provider and the Secret); once
    the Secret exists the LB is made; a later failure of the product (503 busy) is a
    condition, and the address already in the Service's status stays there."""
    async def go() -> None:
        as3 = AS3Service()
        await as3.start()
        c = client(vipcast_crds.kubeconfig, namespace)
        ctl = ProviderController(c, namespace)
        name = f"cr-{namespace}"
        try:
            await create_ready_node(c, f"y-{namespace}", "10.0.0.2")
            await create_as3_provider(c, name, namespace, as3.url, ["198.51.100.104/30"])
            await c.create(provider_service("web", namespace, name))

            await ctl.reconcile()
            got = (await c.get(Service, "web", namespace=namespace)).to_dict()
            cond = condition(got, EXTERNAL_LB)
            assert cond["status"] == "False" and cond["reason"] == "CredentialsUnusable"
            assert f"LoadBalancerProvider {name} (as3)" in cond["message"]
            assert f"Secret {namespace}/f5 with key 'password' not found" in cond["message"]
            assert "CredentialsUnusable" in await event_reasons(c, "web", namespace)
            assert as3.writes == []

            await c.create(password_secret("f5", namespace))
            await ctl.reconcile()
            got = (await c.get(Service, "web", namespace=namespace)).to_dict()
            assert condition(got, EXTERNAL_LB)["reason"] == "Ensured"
            (ingress,) = got["status"]["loadBalancer"]["ingress"]

            as3.busy = 10
            await c.patch(Service, "web", {"spec": {"ports": [
                {"port": 80, "protocol": "TCP", "nodePort": 30080, "name": "http"},
                {"port": 443, "protocol": "TCP", "nodePort": 30443, "name": "tls"}]}},
                namespace=namespace, patch_type=PatchType.MERGE)
            result = await ctl.reconcile()
            assert result.retry_after is not None
            got = (await c.get(Service, "web", namespace=namespace)).to_dict()
            cond = condition(got, EXTERNAL_LB)
            assert cond["status"] == "False" and cond["reason"] == "Busy", cond
            assert got["status"]["loadBalancer"]["ingress"] == [ingress]
        finally:
            as3.busy = 0
            with contextlib.suppress(ApiError):
                await c.delete(Service, "web", namespace=namespace)
            await ctl.reconcile()
            await as3.stop()
            await delete_cluster_scoped(c, (Provider, name), (IPAddressPool, name),
                                        (Node, f"y-{namespace}"))
            await c.close()
    run(go(), timeout=120)


def test_an_invalid_service_blocks_nothing_and_keeps_its_load_balancer(
        vipcast_crds: Cluster, namespace: str) -> None:
    """A tenant edits a Service into something invalid (a bad address annotation): the other
    Services' load balancers are still kept up to date in the same pass, the invalid one's
    load balancer and address are left exactly as they are (not deleted as unwanted), and the
    Service says why (condition + Event naming the provider and the field)."""
    async def go() -> None:
        as3 = AS3Service()
        await as3.start()
        c = client(vipcast_crds.kubeconfig, namespace)
        ctl = ProviderController(c, namespace)
        name = f"iv-{namespace}"
        try:
            await create_ready_node(c, f"z-{namespace}", "10.0.0.4")
            await c.create(password_secret("f5", namespace))
            await create_as3_provider(c, name, namespace, as3.url, ["198.51.100.112/29"])
            for svc_name in ("web", "api"):
                svc = provider_service(svc_name, namespace, name).to_dict()
                svc["spec"]["ports"][0]["nodePort"] = 30080 if svc_name == "web" else 30081
                await c.create(Service.from_dict(svc))
            result = await ctl.reconcile()
            web_lb = f"kube_service_kubernetes_{namespace}_web"
            api_lb = f"kube_service_kubernetes_{namespace}_api"
            assert sorted(result.ensured) == sorted([web_lb, api_lb])
            web_app = json.dumps(as3.tenants[namespace][web_lb], sort_keys=True)
            before = (await c.get(Service, "web", namespace=namespace)).to_dict()
            (ingress,) = before["status"]["loadBalancer"]["ingress"]

            await c.patch(Service, "web", {"metadata": {"annotations": {
                "vipcast.io/loadBalancerIPs": "bogus"}}}, namespace=namespace,
                patch_type=PatchType.MERGE)
            await c.patch(Service, "api", {"spec": {"ports": [
                {"port": 80, "protocol": "TCP", "nodePort": 30081, "name": "http"},
                {"port": 443, "protocol": "TCP", "nodePort": 30443, "name": "tls"}]}},
                namespace=namespace, patch_type=PatchType.MERGE)
            result = await ctl.reconcile()
            assert result.ensured == [api_lb] and result.deleted == []
            assert "pool-tcp-443" in as3.tenants[namespace][api_lb]
            assert json.dumps(as3.tenants[namespace][web_lb], sort_keys=True) == web_app
            got = (await c.get(Service, "web", namespace=namespace)).to_dict()
            cond = condition(got, EXTERNAL_LB)
            assert cond["status"] == "False" and cond["reason"] == "InvalidService", cond
            assert f"LoadBalancerProvider {name}" in cond["message"]
            assert "vipcast.io/loadBalancerIPs" in cond["message"] and "bogus" in cond["message"]
            assert "InvalidService" in await event_reasons(c, "web", namespace)
            assert got["status"]["loadBalancer"]["ingress"] == [ingress]
            assert not as3.invalid
        finally:
            for svc_name in ("web", "api"):
                with contextlib.suppress(ApiError):
                    await c.delete(Service, svc_name, namespace=namespace)
            await ctl.reconcile()
            with contextlib.suppress(ApiError):  # the invalid one is never let go by vipcast
                await c.patch(Service, "web", {"metadata": {"finalizers": None}},
                              namespace=namespace, patch_type=PatchType.MERGE)
            await as3.stop()
            await delete_cluster_scoped(c, (Provider, name), (IPAddressPool, name),
                                        (Node, f"z-{namespace}"))
            await c.close()
    run(go(), timeout=120)


def test_run_keeps_each_providers_driver_until_the_provider_or_its_secret_changes(
        vipcast_crds: Cluster, namespace: str) -> None:
    """Under ``run`` a provider's driver (its HTTP session; with Keystone, its token) is built
    once and reused pass after pass; a changed Secret builds a new one and closes the old; the
    provider removed, its driver is closed."""
    from vipcast.app.providers import build_driver

    async def go() -> None:
        as3 = AS3Service()
        await as3.start()
        c = client(vipcast_crds.kubeconfig, namespace)
        built: list[Any] = []

        def factory(provider: Any, spec: Any) -> Any:
            built.append(build_driver(provider, spec))
            return built[-1]

        ctl = ProviderController(c, namespace, factory=factory, resync=0.2)
        name = f"kd-{namespace}"
        stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        try:
            await c.create(password_secret("f5", namespace))
            await c.create(provider(name, "as3", as3.url, {"tenant": namespace},
                                    secret=("f5", namespace)))
            task = asyncio.create_task(ctl.run(stop))
            await eventually(lambda: asyncio.sleep(0, built[0].calls >= 3 if built else None),
                             30, what="three passes with one driver")
            assert len(built) == 1
            await c.patch(Secret, "f5", {"stringData": {"password": "rotated"}},
                          namespace=namespace, patch_type=PatchType.MERGE)
            await eventually(lambda: asyncio.sleep(0, len(built) == 2), 30,
                             what="a new driver for the rotated Secret")
            assert built[0]._session is None  # the old one was closed
            assert built[1].authorization != built[0].authorization
            await c.delete(Provider, name)
            await eventually(lambda: asyncio.sleep(0, built[1]._session is None), 30,
                             what="the removed provider's driver closed")
            assert len(built) == 2
        finally:
            stop.set()
            if task is not None:
                await asyncio.wait_for(task, 30)
            await as3.stop()
            with contextlib.suppress(ApiError):
                await c.delete(Provider, name)
            await c.close()
    run(go(), timeout=120)
