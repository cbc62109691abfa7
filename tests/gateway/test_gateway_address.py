"""A Gateway's address is a vipcast VIP (issue 12, item 6), pure: allocated like a LoadBalancer
Service's (``spec.addresses`` or a pool), two Gateways asking for one address get a conflict,
the plan announces it by BGP without endpoints and without NAT, and only while the node's
Envoy serves (``Local.proxy_ready``)."""

from __future__ import annotations

from typing import Any

from tests.gateway.gwobjects import gateway, gateway_class, spec_of

from vipcast.core.gateway import translate
from vipcast.core.gateway.address import (
    SUFFIX,
    GatewayServices,
    gateway_addresses,
    gateway_refusals,
    gateway_service_key,
)
from vipcast.core.incremental import NodePlanner
from vipcast.core.pipeline import Local, NodeIdentity, plan, servable_now, snapshot
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


def test_undrain_gate_counts_a_served_gateway_as_servable() -> None:
    """The drain driver's HEALTH_VERIFIED reads what the planner would announce: with the
    node's Envoy ready, the Gateway's stand-in Service is servable (the undrain of a node
    carrying a Gateway VIP waited for ever, seen in the demo)."""
    spec = spec_of([*_infra(), gateway_class(), gateway("web", addresses=())])
    planner = NodePlanner()
    full = GatewayServices()(spec)
    duties = planner(full, "n1")
    snap = snapshot(full, duties, NodeIdentity("n1"),
                    gateway_addresses=gateway_addresses(planner.assignments))
    stand_in = gateway_service_key("default/web")
    assert stand_in in {s for r in snap.plan_base.bgp for s in r.services}
    ready = servable_now(snap, Local(servable=frozenset(), proxy_ready=True))
    assert ready is not None and stand_in in ready
    assert servable_now(snap, Local(servable=frozenset(), proxy_ready=False)) == frozenset()
    assert servable_now(snap, Local()) is None


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


def _committed(doc: Doc, *ips: str) -> Doc:
    """``doc`` (a Gateway) with ``ips`` committed in its status, as the controller writes."""
    return {**doc, "status": {"addresses": [{"type": "IPAddress", "value": ip} for ip in ips]}}


def _allocate(spec: Spec) -> Any:
    from vipcast.core.allocation import allocate_spec

    return allocate_spec(GatewayServices()(spec))


def _lb(name: str, ip: str | None = None, holds: str | None = None) -> Doc:
    meta: Doc = {"name": name, "namespace": "default"}
    if ip:
        meta["annotations"] = {"vipcast.io/loadBalancerIPs": ip}
    doc: Doc = {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                "spec": {"type": "LoadBalancer", "ports": [{"name": "h", "port": 80}]}}
    if holds:
        doc["status"] = {"loadBalancer": {"ingress": [{"ip": holds}]}}
    return doc


def test_two_gateways_asking_for_one_address_conflict_with_a_reason() -> None:
    spec = spec_of([
        *_infra(), gateway_class(),
        _committed(gateway("old", addresses=("198.51.100.5",)), "198.51.100.5"),
        gateway("new", addresses=("198.51.100.5",)),
    ])
    p, allocated = _plan(spec, "n1", Local(servable=frozenset(), proxy_ready=True))
    # the holder keeps it; the address is announced once
    assert _prefixes(p) == ["198.51.100.5/32"]
    assert allocated == {"default/old": ("198.51.100.5",)}
    result = _allocate(spec)
    refusals = gateway_refusals(result.assignments)
    t = translate(GatewayServices()(spec), "n1", gateway_addresses(result.current()),
                  refusals=refusals)
    by_key = {g.key: {c.type: c for c in g.conditions} for g in t.gateways}
    assert by_key["default/old"]["Programmed"].status == "True"
    refused = by_key["default/new"]["Programmed"]
    assert (refused.status, refused.reason) == ("False", "AddressNotUsable")
    assert "Gateway default/old" in refused.message
    assert t.gateway("default/new").addresses == ()  # type: ignore[union-attr]
    assert [lis.address for lis in t.model.listeners] == ["198.51.100.5"]


def test_services_and_gateways_share_the_allocator() -> None:
    """No address is handed to two things: a Gateway asking for a Service's address gets
    AddressNotUsable naming it; a Service asking for a Gateway's is refused like any taken
    address; a pool address given to a Gateway is not given to a Service."""
    spec = spec_of([*_infra(), gateway_class(),
                    _lb("held", holds="198.51.100.1"),
                    gateway("wants", addresses=("198.51.100.1",)),
                    _committed(gateway("holder", addresses=()), "198.51.100.2"),
                    _lb("asks", ip="198.51.100.2"),
                    gateway("fresh", addresses=()), _lb("fresh-svc")])
    result = _allocate(spec)
    current = result.current()
    owners: dict[str, str] = {}
    for key, ips in current.items():
        for ip in ips:
            assert ip not in owners, (ip, key, owners[ip])
            owners[ip] = key
    assert owners["198.51.100.1"] == "default/held"
    assert owners["198.51.100.2"] == gateway_service_key("default/holder")
    assert result.assignments["default/asks"].reason == "RequestedIPTaken"
    refusals = gateway_refusals(result.assignments)
    reason, message = refusals["default/wants"]
    assert reason == "AddressNotUsable"
    assert message == ("RequestedIPTaken: requested 198.51.100.1: held by default/held "
                       "(no common sharing key)")
    assert "Gateway default/holder" in _readable_holder(result.assignments["default/asks"])
    assert gateway_service_key("default/fresh") in current
    assert "default/fresh-svc" in current


def _readable_holder(assignment: Any) -> str:
    from vipcast.core.gateway.address import readable

    return readable(assignment.message)


def test_pool_exhausted_is_address_not_assigned() -> None:
    docs = [*_infra(), gateway_class()]
    docs[0] = {**docs[0], "spec": {"addresses": ["198.51.100.1/32"]}}
    spec = spec_of([*docs, _committed(gateway("a", addresses=()), "198.51.100.1"),
                    gateway("b", addresses=())])
    result = _allocate(spec)
    refusals = gateway_refusals(result.assignments)
    assert list(refusals) == ["default/b"]
    assert refusals["default/b"][0] == "AddressNotAssigned"
    t = translate(GatewayServices()(spec), "n1", gateway_addresses(result.current()),
                  refusals=refusals)
    prog = {c.type: c for c in t.gateway("default/b").conditions}["Programmed"]  # type: ignore[union-attr]
    assert (prog.status, prog.reason) == ("False", "AddressNotAssigned")
    assert "PoolExhausted" in prog.message


def test_a_committed_address_is_the_stand_ins_status() -> None:
    spec = spec_of([*_infra(), gateway_class(),
                    _committed(gateway("web", addresses=()), "198.51.100.3")])
    (stand_in,) = [s for s in GatewayServices()(spec).services if s.key.endswith(SUFFIX)]
    assert stand_in.status_ips == ("198.51.100.3",)
    # a controller restart keeps it
    assert _allocate(spec).current()[stand_in.key] == ("198.51.100.3",)
    # of the class the controller serves, when it serves one
    classed = GatewayServices("example.com/lb")(spec)
    assert classed.services[-1].spec.load_balancer_class == "example.com/lb"


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
