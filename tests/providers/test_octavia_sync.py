"""Octavia through the Spec path (desired_external + sync_provider) on the real API: the
shared-LB annotation (one LB for two Services, kept until its last Service goes) and the VIP
kept when an LB deleted behind vipcast's back is created again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lb_objects import node, service, spec_of
from octavia_api import PROJECT, SUBNET, OctaviaAPI

from vipcast.app.providers import sync_providers

pytestmark = pytest.mark.usefixtures("octavia_api")


def provider(url: str) -> dict[str, Any]:
    return {"apiVersion": "vipcast.io/v1beta1", "kind": "LoadBalancerProvider",
            "metadata": {"name": "os"},
            "spec": {"driver": "octavia", "endpoint": url,
                     "options": {"vipSubnetId": SUBNET, "projectId": PROJECT}}}


def live(api: OctaviaAPI) -> dict[str, str]:
    api.settle()
    return {str(n): str(ip) for n, ip in api.rows(
        "SELECT name, ip_address FROM load_balancer JOIN vip ON vip.load_balancer_id = "
        "load_balancer.id WHERE provisioning_status != 'DELETED'")}


def ports(api: OctaviaAPI, lb: str) -> list[int]:
    return sorted(int(str(r[0])) for r in api.rows(
        "SELECT protocol_port FROM listener JOIN load_balancer ON load_balancer.id = "
        "listener.load_balancer_id WHERE load_balancer.name = ? AND "
        "load_balancer.provisioning_status != 'DELETED'", lb))


def test_shared_load_balancer_lives_until_its_last_service(octavia_api: OctaviaAPI) -> None:
    async def main() -> None:
        nodes = [node("n1", "10.0.0.1"), node("n2", "10.0.0.2")]
        a = service("a", [(80, "TCP", 30080)], cls="vipcast.io/os", shared="front")
        b = service("b", [(443, "TCP", 30443)], cls="vipcast.io/os", shared="front")
        (report,) = await sync_providers(spec_of(provider(octavia_api.url), *nodes, a, b))
        assert [x.name for x in report.applied] == ["kube_shared_kubernetes_front"]
        vip = report.ingress["default/a"][0]
        assert vip and report.ingress["default/b"][0] == vip
        assert set(live(octavia_api)) == {"kube_shared_kubernetes_front"}
        assert ports(octavia_api, "kube_shared_kubernetes_front") == [80, 443]
        # a goes: the LB stays with b's listener only
        (report,) = await sync_providers(spec_of(provider(octavia_api.url), *nodes, b))
        assert report.deleted == [] and report.applied[0].changes > 0
        octavia_api.settle()
        assert ports(octavia_api, "kube_shared_kubernetes_front") == [443]
        # b goes: the LB goes
        (report,) = await sync_providers(spec_of(provider(octavia_api.url), *nodes))
        assert [d.name for d in report.deleted] == ["kube_shared_kubernetes_front"]
        assert live(octavia_api) == {}
    asyncio.run(main())


def test_vip_kept_when_a_deleted_lb_is_created_again(octavia_api: OctaviaAPI) -> None:
    async def main() -> None:
        nodes = [node("n1", "10.0.0.1")]
        # first created with a requested VIP (the noop provider would otherwise always
        # report the same default address, and the test could not fail)
        web = service("web", [(80, "TCP", 30080)], cls="vipcast.io/os", ip="198.51.100.40")
        (report,) = await sync_providers(spec_of(provider(octavia_api.url), *nodes, web))
        vip = report.ingress["default/web"][0]
        assert vip == "198.51.100.40"
        # the controller wrote it to the Service's status; the request is dropped; then the
        # LB is deleted behind vipcast's back
        web["spec"].pop("loadBalancerIP")
        web["status"] = {"loadBalancer": {"ingress": [{"ip": vip, "ipMode": "VIP"}]}}
        lb_id = octavia_api.rows("SELECT id FROM load_balancer WHERE name = ? AND "
                                 "provisioning_status != 'DELETED'",
                                 "kube_service_kubernetes_default_web")[0][0]
        from vipcast.providers.octavia.driver import OctaviaDriver
        drv = OctaviaDriver(octavia_api.url, project_id=PROJECT, vip_subnet_id=SUBNET)
        await drv._connect()
        drv.lb.delete_load_balancer(str(lb_id), cascade=True)
        await drv.close()
        assert live(octavia_api) == {}
        (report,) = await sync_providers(spec_of(provider(octavia_api.url), *nodes, web))
        assert report.ingress["default/web"][0] == vip
        assert live(octavia_api) == {"kube_service_kubernetes_default_web": vip}
        (report,) = await sync_providers(spec_of(provider(octavia_api.url), *nodes))
        assert live(octavia_api) == {}
    asyncio.run(main())
