"""The objects a node speaker test makes on the API server: a Node, a pool, a passive BGP peer
on the loopback selecting that Node, an advertisement of the pool -- and the Service status the
controller would have committed."""

from __future__ import annotations

from typing import Any

from lightkube import AsyncClient
from lightkube.generic_resource import create_global_resource
from lightkube.models.core_v1 import LoadBalancerIngress, LoadBalancerStatus, ServiceStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node, Service

from .kubetools import IPAddressPool, pool

BGPPeer = create_global_resource("vipcast.io", "v1beta1", "BGPPeer", "bgppeers")
BGPAdvertisement = create_global_resource("vipcast.io", "v1beta1", "BGPAdvertisement",
                                          "bgpadvertisements")


async def create_speaker_objects(c: AsyncClient, namespace: str, node: str,
                                 addresses: str) -> None:
    """Node ``node`` (hostname label), pool ``p-<namespace>`` of ``addresses`` for the
    namespace, BGPPeer ``peer-<namespace>`` (passive, 127.0.0.1:1790, only on ``node``) and
    BGPAdvertisement ``adv-<namespace>`` of the pool."""
    await c.create(Node.from_dict({"metadata": {
        "name": node, "labels": {"kubernetes.io/hostname": node}}}))
    await c.create(pool(f"p-{namespace}", [addresses], namespace))
    await c.create(BGPPeer.from_dict({
        "apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer",
        "metadata": {"name": f"peer-{namespace}"},
        "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "127.0.0.1",
                 "peerPort": 1790, "passive": True,
                 "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": node}}]}}))
    await c.create(BGPAdvertisement.from_dict({
        "apiVersion": "vipcast.io/v1beta1", "kind": "BGPAdvertisement",
        "metadata": {"name": f"adv-{namespace}"},
        "spec": {"ipAddressPools": [f"p-{namespace}"]}}))


def speaker_objects(namespace: str, node: str) -> tuple[tuple[Any, str], ...]:
    """What :func:`create_speaker_objects` made (all cluster-scoped), in the order to delete."""
    return ((BGPAdvertisement, f"adv-{namespace}"), (BGPPeer, f"peer-{namespace}"),
            (IPAddressPool, f"p-{namespace}"), (Node, node))


async def set_status(c: AsyncClient, name: str, namespace: str, ips: list[str]) -> None:
    """Service ``name``'s load balancer ingress, as the controller commits it."""
    await c.apply(Service.Status(
        apiVersion="v1", kind="Service", metadata=ObjectMeta(name=name, namespace=namespace),
        status=ServiceStatus(loadBalancer=LoadBalancerStatus(
            ingress=[LoadBalancerIngress(ip=ip, ipMode="VIP") for ip in ips]))),
        name, namespace=namespace, field_manager="vipcast-controller", force=True)
