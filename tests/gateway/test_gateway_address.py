"""A Gateway's address is a vipcast VIP (issue 12, item 6), pure: allocated like a LoadBalancer
Service's (``spec.addresses`` or a pool), two Gateways asking for one address get a conflict,
the plan announces it by BGP without endpoints and without NAT, and only while the node's
Envoy serves (``Local.proxy_ready``)."""

from __future__ import annotations

from typing import Any

from tests.gateway.gwobjects import gateway, gateway_class, spec_of

from vipcast.core.gateway import translate
from vipcast.core.gateway.address import (
    GatewayServices,
    gateway_addresses,
    gateway_service_key,
)
from vipcast.core.incremental import NodePlanner
from vipcast.core.pipeline import Local, NodeIdentity, plan, snapshot
from vipcast.spec import Spec

Doc = dict[str, Any]
V = "vipcast.io/v1beta1"


def _infra() -> list[Doc]:
    return [
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "gw"},
         "spec": {"addresses": ["198.51.100.0/29"]}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "r"},
         "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1"}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "all"},
         "spec": {"ipAddressPools": ["gw"]}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}},
    ]


def _plan(spec: Spec, node: str, local: Local) -> tuple[Any, Any]:
    planner = NodePlanner()
    full = GatewayServices()(spec)
    duties = planner(full, node)
    allocated = gateway_addresses(planner.assignments)
    snap = snapshot(full, duties, NodeIdentity(node), gateway_addresses=allocated)
    return plan(snap, local), allocated


def _prefixes(p: Any) -> list[str]:
    return sorted(r.prefix for r in p.bgp)


def test_pool_address_is_allocated_listened_on_and_announced_only_while_envoy_serves() -> None:
    spec = spec_of([*_infra(), gateway_class(), gateway("web", addresses=())])
    ready, allocated = _plan(spec, "n1", Local(servable=frozenset(), proxy_ready=True))
    assert list(allocated) == ["default/web"]
    (vip,) = allocated["default/web"]
    assert vip.startswith("198.51.100.")
    # BGP from this node, no endpoints needed, no NAT: Envoy binds the VIP
    assert _prefixes(ready) == [f"{vip}/32"]
    assert ready.bgp[0].services == (gateway_service_key("default/web"),)
    assert ready.nat == ()
    assert vip in ready.local_vips
    # the proxy model listens on it (freebind) and the Gateway's status carries it
    assert ready.proxy is not None
    assert [lis.address for lis in ready.proxy.listeners] == [vip]
    status = translate(GatewayServices()(spec), "n1", allocated).gateways[0]
    assert status.addresses == (vip,)
    assert {c.type: c.status for c in status.conditions}["Programmed"] == "True"
    # a dead or unconfigured Envoy: nothing announced (the data plane still holds the VIP)
    dead, _ = _plan(spec, "n1", Local(servable=frozenset(), proxy_ready=False))
    assert dead.bgp == ()
    assert vip in dead.local_vips
    # every node computes the same address (ECMP: each node announces it while it serves)
    other, allocated2 = _plan(spec, "n2", Local(servable=frozenset(), proxy_ready=True))
    assert allocated2 == allocated
    assert _prefixes(other) == [f"{vip}/32"]


def test_requested_address_is_kept() -> None:
    spec = spec_of([*_infra(), gateway_class(), gateway("web", addresses=("198.51.100.5",))])
    p, allocated = _plan(spec, "n1", Local(servable=frozenset(), proxy_ready=True))
    assert allocated == {"default/web": ("198.51.100.5",)}
    assert _prefixes(p) == ["198.51.100.5/32"]


def test_two_gateways_asking_for_one_address_conflict_with_a_reason() -> None:
    spec = spec_of([
        *_infra(), gateway_class(),
        gateway("old", addresses=("198.51.100.5",), created="2026-01-01T00:00:00Z"),
        gateway("new", addresses=("198.51.100.5",), created="2026-02-01T00:00:00Z"),
    ])
    p, allocated = _plan(spec, "n1", Local(servable=frozenset(), proxy_ready=True))
    # one of them holds it; the address is announced once
    assert _prefixes(p) == ["198.51.100.5/32"]
    assert sum(1 for ips in allocated.values() if "198.51.100.5" in ips) == 1
    result = translate(GatewayServices()(spec), "n1", allocated)
    by_key = {g.key: {c.type: c for c in g.conditions} for g in result.gateways}
    assert by_key["default/old"]["Programmed"].status == "True"
    refused = by_key["default/new"]["Programmed"]
    assert (refused.status, refused.reason) == ("False", "AddressNotUsable")
    assert "default/old" in refused.message


def test_a_gateway_of_another_class_gets_no_address() -> None:
    spec = spec_of([*_infra(), gateway_class("other", controller="example.com/x"),
                    gateway("web", addresses=(), cls="other")])
    p, allocated = _plan(spec, "n1", Local(servable=frozenset(), proxy_ready=True))
    assert allocated == {}
    assert p.bgp == ()


def test_unchanged_gateway_keeps_its_stand_in_service() -> None:
    spec = spec_of([*_infra(), gateway_class(), gateway("web", addresses=())])
    stand_in = GatewayServices()
    first = stand_in(spec)
    second = stand_in(spec)
    assert first.services[-1] is second.services[-1]
