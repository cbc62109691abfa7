"""`vipcast providers sync` logic from a file set: ensure, resync repairs drift, a Service
gone -> its load balancer deleted, an inexpressible Service refused with its reason."""

from __future__ import annotations

import asyncio

from as3_server import AS3Service
from lb_objects import node, pool, service, spec_of

from vipcast.app.providers import sync_providers

SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "f5", "namespace": "default"},
          "stringData": {"password": "secret"}}


def objects(url: str, *services: dict[str, object]) -> list[dict[str, object]]:
    prov = {"apiVersion": "vipcast.io/v1beta1", "kind": "LoadBalancerProvider",
            "metadata": {"name": "f5"},
            "spec": {"driver": "as3", "endpoint": url, "credentialsSecret": {"name": "f5"},
                     "options": {"addressPools": ["f5"], "tenant": "k8s"}}}
    return [prov, SECRET, pool("f5", "198.51.100.0/28"), node("n1", "10.0.0.1"),
            node("n2", "10.0.0.2"), *services]


def test_sync_ensures_repairs_and_deletes() -> None:
    async def main() -> None:
        as3 = AS3Service()
        await as3.start()
        try:
            web = service("web", [(80, "TCP", 30080)], cls="vipcast.io/f5")
            sctp = service("sig", [(3868, "SCTP", 30868)], cls="vipcast.io/f5")
            spec = spec_of(*objects(as3.url, web, sctp))
            (report,) = await sync_providers(spec)
            assert [a.name for a in report.applied] == ["kube_service_kubernetes_default_web"]
            assert report.ingress["default/web"][0] is not None
            (refusal,) = report.refused
            assert refusal.service == "default/sig" and "carries TCP, UDP only" in refusal.message
            app = as3.tenants["k8s"]["kube_service_kubernetes_default_web"]
            # drift behind vipcast's back, repaired by the next pass
            del app["pool-tcp-80"]["members"][0]
            (again,) = await sync_providers(spec)
            assert [a.changes for a in again.applied] == [1]
            (quiet,) = await sync_providers(spec)
            assert [a.changes for a in quiet.applied] == [0]
            # the Service is gone: its load balancer is deleted
            (gone,) = await sync_providers(spec_of(*objects(as3.url)))
            assert [d.name for d in gone.deleted] == ["kube_service_kubernetes_default_web"]
            assert "k8s" not in as3.tenants
            assert not as3.invalid
        finally:
            await as3.stop()
    asyncio.run(main())
