"""The objects the external load balancer tests make on the API server: a LoadBalancerProvider,
its Services, a Ready Node with one address, a credentials Secret, a pool only a provider
draws from -- and the removal of the cluster-scoped ones, which outlive a test's namespace
(every later test's controller would read them)."""

from __future__ import annotations

import contextlib
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_global_resource
from lightkube.resources.core_v1 import Node, Secret, Service
from lightkube.types import PatchType

from .kubetools import pool

Provider = create_global_resource("vipcast.io", "v1beta1", "LoadBalancerProvider",
                                  "loadbalancerproviders")


def provider(name: str, driver: str, endpoint: str, options: dict[str, Any], *,
             secret: tuple[str, str] | None = None) -> Any:
    """LoadBalancerProvider ``name``; ``secret``: (name, namespace) of its credentials."""
    spec: dict[str, Any] = {"driver": driver, "endpoint": endpoint}
    if secret is not None:
        spec["credentialsSecret"] = {"name": secret[0], "namespace": secret[1]}
    spec["options"] = options
    return Provider.from_dict({"apiVersion": "vipcast.io/v1beta1",
                               "kind": "LoadBalancerProvider", "metadata": {"name": name},
                               "spec": spec})


def provider_service(name: str, namespace: str, provider_name: str, proto: str = "TCP"
                     ) -> Service:
    """A Service of ``provider_name``'s class: port 80, node port 30080."""
    return Service.from_dict({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": f"vipcast.io/{provider_name}",
                 "ports": [{"port": 80, "protocol": proto, "nodePort": 30080}]}})


def password_secret(name: str, namespace: str) -> Secret:
    return Secret.from_dict({"metadata": {"name": name, "namespace": namespace},
                             "stringData": {"password": "secret"}})


def provider_pool(name: str, addresses: list[str], namespace: str) -> Any:
    """A pool that assigns only on request (the provider names it), not to any Service."""
    p = pool(name, addresses, namespace)
    p["spec"]["autoAssign"] = False
    return p


async def create_as3_provider(c: AsyncClient, name: str, namespace: str, endpoint: str,
                              addresses: list[str], *, cluster_name: str | None = None) -> None:
    """Pool ``name`` of ``addresses`` and AS3 provider ``name`` at ``endpoint`` drawing from it
    (tenant: the namespace; credentials: Secret ``f5`` there, which the caller makes or not)."""
    await c.create(provider_pool(name, addresses, namespace))
    options: dict[str, Any] = {"addressPools": [name], "tenant": namespace}
    if cluster_name is not None:
        options["clusterName"] = cluster_name
    await c.create(provider(name, "as3", endpoint, options, secret=("f5", namespace)))


async def create_ready_node(c: AsyncClient, name: str, address: str) -> None:
    """Node ``name``, Ready, with InternalIP ``address``."""
    await c.create(Node.from_dict({"metadata": {"name": name}}))
    await c.patch(Node.Status, name, {"status": {
        "addresses": [{"type": "InternalIP", "address": address}],
        "conditions": [{"type": "Ready", "status": "True"}]}},
        patch_type=PatchType.MERGE)


async def delete_cluster_scoped(c: AsyncClient, *objects: tuple[Any, str]) -> None:
    """Delete each (resource, name), whether or not it still exists."""
    for res, name in objects:
        with contextlib.suppress(ApiError):
            await c.delete(res, name)


async def release_service(c: AsyncClient, name: str, namespace: str) -> None:
    """Delete the Service and drop its finalizers (no controller is left to let it go), if it
    is still there."""
    with contextlib.suppress(ApiError):
        await c.delete(Service, name, namespace=namespace)
        await c.patch(Service, name, {"metadata": {"finalizers": None}},
                      namespace=namespace, patch_type=PatchType.MERGE)


def condition(svc: dict[str, Any], type_: str) -> dict[str, Any]:
    """The Service's status condition of ``type_``."""
    return next(c for c in svc["status"].get("conditions") or () if c["type"] == type_)
