"""Small helpers shared by the API-tier tests (clients, objects, polling)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.generic_resource import create_global_resource
from lightkube.resources.core_v1 import Event, Service

from .harness.cluster import Cluster

T = TypeVar("T")
GW = "/apis/gateway.networking.k8s.io/v1"
IPAddressPool = create_global_resource("vipcast.io", "v1beta1", "IPAddressPool",
                                       "ipaddresspools")


def post(cluster: Cluster, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST an object through the harness's plain client; it must be created."""
    code, out = cluster.request("POST", path, body)
    assert code == 201, (path, out)
    assert isinstance(out, dict)
    return out


def client(kubeconfig: Path, namespace: str = "default") -> AsyncClient:
    return AsyncClient(config=KubeConfig.from_file(kubeconfig), namespace=namespace)


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 20,
                     every: float = 0.1, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy (bounded in time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: T | None = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def webhook_released(c: AsyncClient, reviews: Callable[[], int], probe: Any,
                           timeout: float = 30) -> None:
    """Once a test deleted its ValidatingWebhookConfiguration, wait until the API server no
    longer calls the webhook: a dry-run create of ``probe`` (an object that configuration
    matched, under a fresh name) no longer reaches it (``reviews``: the webhook's count of
    calls). The API server learns of the deletion through its watch; stopping the webhook
    before that (failurePolicy Fail) would make the session cluster refuse the next test's
    writes."""
    async def released() -> bool:
        before = reviews()
        with contextlib.suppress(ApiError):  # refused by the webhook still called: again
            await c.create(probe, dry_run=True)
        return reviews() == before

    await eventually(released, timeout, every=0.2, what="the API server to stop calling the "
                     "deleted webhook")


def lb_service(name: str, namespace: str, *, cls: str | None = None, type_: str = "LoadBalancer",
               annotations: dict[str, str] | None = None) -> Service:
    spec: dict[str, Any] = {"type": type_, "ports": [{"port": 80, "protocol": "TCP"}]}
    if cls:
        spec["loadBalancerClass"] = cls
    return Service.from_dict({
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": spec,
    })


def pool(name: str, addresses: list[str], namespace: str) -> Any:
    return IPAddressPool.from_dict({
        "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name},
        "spec": {"addresses": addresses, "serviceAllocation": {"namespaces": [namespace]}},
    })


async def ingress_ips(c: AsyncClient, name: str, namespace: str) -> tuple[str, ...]:
    svc = await c.get(Service, name, namespace=namespace)
    lb = svc.status.loadBalancer if svc.status else None
    return tuple(i.ip for i in (lb.ingress or []) if i.ip) if lb else ()


async def event_reasons(c: AsyncClient, name: str, namespace: str) -> list[str]:
    return [e.reason or "" async for e in c.list(Event, namespace=namespace)
            if e.involvedObject.name == name]


__all__ = [
    "Event",
    "IPAddressPool",
    "Service",
    "client",
    "event_reasons",
    "eventually",
    "ingress_ips",
    "lb_service",
    "pool",
]


def endpoint_slice(service: str, namespace: str, node: str, address: str) -> Any:
    from lightkube.resources.discovery_v1 import EndpointSlice

    return EndpointSlice.from_dict({
        "metadata": {"name": f"{service}-1", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True},
                       "nodeName": node}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    })
