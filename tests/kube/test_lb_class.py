"""Which Services vipcast serves in a cluster: MetalLB's ``--lb-class`` rule (issue 16).

Before: with a class configured, class-less Services were claimed too (status written with a
forced server-side apply), so vipcast fought another load balancer of the same cluster.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from vipcast.app.controller import Controller, ControllerConfig
from vipcast.app.speaker import status_assignments
from vipcast.sources.kube.leader import ElectionConfig
from vipcast.spec import claims, load_documents

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import IPAddressPool, Service, client, eventually, ingress_ips, lb_service, pool


def test_claims_is_metallbs_rule() -> None:
    assert claims(None, None)
    assert not claims("example.com/x", None)
    assert claims("example.com/x", "example.com/x")
    assert not claims(None, "example.com/x")  # class-less: another load balancer's


def test_speaker_announces_only_claimed_services() -> None:
    def svc(name: str, cls: str | None) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "n"},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}],
                         **({"loadBalancerClass": cls} if cls else {})},
                "status": {"loadBalancer": {"ingress": [{"ip": f"192.0.2.{len(name)}"}]}}}

    spec = load_documents([
        ("t", {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": "p"}, "spec": {"addresses": ["192.0.2.0/28"]}}),
        ("t", svc("a", None)), ("t", svc("bb", "example.com/x"))])
    assert set(status_assignments(spec, None)) == {"n/a"}
    assert set(status_assignments(spec, "example.com/x")) == {"n/bb"}


@pytest.mark.slow
def test_configured_class_leaves_classless_services_alone(vipcast_crds: Cluster,
                                                          namespace: str) -> None:
    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        await c.create(pool(f"p-{namespace}", ["198.51.100.48/30"], namespace))
        await c.create(lb_service("classless", namespace))
        await c.create(lb_service("ours", namespace, cls="example.com/x"))
        await c.create(lb_service("theirs", namespace, cls="example.com/y"))
        ctl = Controller(c, ControllerConfig(
            identity="cls", load_balancer_class="example.com/x",
            election=ElectionConfig(name=f"cls-{namespace}", namespace=namespace,
                                    lease_duration=2, renew_deadline=1.5, retry_period=0.2),
            resync=1, debounce=0.02))
        task = asyncio.create_task(ctl.run())
        try:
            await eventually(lambda: ingress_ips(c, "ours", namespace), 30, what="an IP")
            await eventually(lambda: asyncio.sleep(0, ctl.rounds >= 3), 20, what="3 rounds")
            assert await ingress_ips(c, "classless", namespace) == ()
            assert await ingress_ips(c, "theirs", namespace) == ()
            svc = await c.get(Service, "classless",
                              namespace=namespace)
            assert not (svc.status and svc.status.conditions), svc.status
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await c.delete(IPAddressPool, f"p-{namespace}")
            await c.close()

    run(go(), 60)
