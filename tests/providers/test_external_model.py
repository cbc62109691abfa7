"""The pure desired external load balancer: listeners, members, monitors, refusals as values."""

from __future__ import annotations

import ipaddress

import pytest
from lb_objects import node, pool, provider, service, slice_, spec_of

from vipcast.core.external import Capabilities, HealthMonitor, Member, Why, desired_external

TCP_ONLY = Capabilities("haproxy", frozenset({"TCP"}))
NO_EXTRAS = Capabilities("as3", frozenset({"TCP", "UDP"}), proxy_protocol=False,
                         forwarded_for=False, source_ranges=False)
ONE_RANGE = Capabilities("as3", frozenset({"TCP", "UDP"}), source_range_limit=1)
PICKS_VIP = Capabilities("octavia", frozenset({"TCP", "UDP", "SCTP"}), assigns_vip=True)
NODES = [node("n1", "10.0.0.1"), node("n2", "10.0.0.2"), node("n3", "10.0.0.3", ready=False)]


def test_node_members_on_the_node_port_one_listener_per_port() -> None:
    spec = spec_of(provider(addressPools=["lb"]), pool("lb", "198.51.100.0/29"), *NODES,
                   service("web", [(80, "TCP", 30080), (443, "TCP", 30443)],
                           ranges=["192.0.2.7/24"]),
                   service("other", [(80, "TCP", 30001)], cls=None))
    plan = desired_external(spec, spec.providers[0], TCP_ONLY)
    assert plan.refused == ()
    (lb,) = plan.load_balancers
    assert lb.name == "kube_service_kubernetes_default_web"
    assert lb.vip is not None
    assert ipaddress.ip_address(lb.vip) in ipaddress.ip_network("198.51.100.0/29")
    assert [x.name for x in lb.listeners] == ["tcp-80", "tcp-443"]
    assert lb.listeners[0].members == (Member("10.0.0.1", 30080, "n1"),
                                       Member("10.0.0.2", 30080, "n2"))
    assert lb.listeners[1].members[0].port == 30443
    assert lb.listeners[0].allowed_cidrs == ("192.0.2.0/24",)
    assert lb.listeners[0].monitor.kind == "TCP" and lb.listeners[0].monitor.port is None
    assert lb.ip_mode == "VIP"
    assert plan.placement == {"default/web": lb.name}


def test_local_policy_monitors_the_health_check_node_port() -> None:
    spec = spec_of(provider(), *NODES,
                   service("web", [(80, "TCP", 30080)], ip="198.51.100.9", local=True,
                           hc_port=32000))
    (lb,) = desired_external(spec, spec.providers[0], TCP_ONLY).load_balancers
    assert lb.vip == "198.51.100.9"
    assert lb.listeners[0].monitor == HealthMonitor("HTTP", 32000, "/healthz", 5.0, 3.0, 2, 3)


def test_pod_members_are_the_ready_endpoints_on_their_target_port() -> None:
    spec = spec_of(provider(members="pods", proxyProtocol=True), *NODES,
                   service("web", [(80, "TCP", None)], ip="198.51.100.9"),
                   slice_("web", [("10.1.0.5", "n1", True), ("10.1.0.6", "n2", False),
                                  ("10.1.0.7", "n2", True)], [("p80", 8080)]))
    (lb,) = desired_external(spec, spec.providers[0], TCP_ONLY).load_balancers
    assert lb.listeners[0].members == (Member("10.1.0.5", 8080, "n1"),
                                       Member("10.1.0.7", 8080, "n2"))
    assert lb.listeners[0].client_address == "proxy-v2"
    assert lb.ip_mode == "Proxy"


@pytest.mark.parametrize(("svc", "opts", "caps", "why", "text"), [
    (service("dns", [(53, "UDP", 30053)], ip="198.51.100.9"), {}, TCP_ONLY, Why.PROTOCOL,
     "port 53/UDP: the haproxy driver carries TCP only"),
    (service("web", [(80, "TCP", 30080)], ip="198.51.100.9"), {"proxyProtocol": True},
     NO_EXTRAS, Why.CLIENT_ADDRESS, "the as3 driver cannot send the PROXY protocol"),
    (service("web", [(80, "TCP", 30080)], ip="198.51.100.9", ranges=["192.0.2.0/24"]), {},
     NO_EXTRAS, Why.SOURCE_RANGES, "the as3 driver cannot restrict source ranges"),
    (service("web", [(80, "TCP", 30080)], ip="198.51.100.9",
             ranges=["192.0.2.0/24", "203.0.113.0/24"]), {}, ONE_RANGE, Why.SOURCE_RANGES,
     "the as3 driver carries at most 1 source range(s), not 2"),
    (service("dns", [(53, "UDP", 30053)], ip="198.51.100.9"), {"proxyProtocol": True},
     PICKS_VIP, Why.CLIENT_ADDRESS, "port 53/UDP: the client address can only be carried"),
    (service("web", [(80, "TCP", None)], ip="198.51.100.9"), {}, TCP_ONLY, Why.NO_NODE_PORT,
     "port 80/TCP has no nodePort"),
    (service("web", [(80, "TCP", 30080)]), {}, TCP_ONLY, Why.NO_ADDRESS,
     "the haproxy driver needs an address"),
])
def test_what_a_driver_cannot_express_is_refused_with_the_reason(
    svc: dict[str, object], opts: dict[str, object], caps: Capabilities, why: Why, text: str
) -> None:
    spec = spec_of(provider(**opts), *NODES, svc, service("ok", [(81, "TCP", 30081)],
                                                          ip="198.51.100.10"))
    plan = desired_external(spec, spec.providers[0], caps)
    refusal = next(r for r in plan.refused if r.service != "default/ok")
    assert refusal.why == why and text in refusal.message, refusal
    if not opts:  # a provider-wide option refuses every Service; a port only its own
        assert [lb.services for lb in plan.load_balancers] == [("default/ok",)]


def test_the_provider_picks_the_vip_when_the_driver_can() -> None:
    spec = spec_of(provider("os", "octavia", vipSubnetId="s"), *NODES,
                   service("web", [(80, "TCP", 30080)], cls="vipcast.io/os"))
    (lb,) = desired_external(spec, spec.providers[0], PICKS_VIP).load_balancers
    assert lb.vip is None


def test_shared_load_balancer_merges_listeners_and_refuses_a_clash() -> None:
    spec = spec_of(provider(), *NODES,
                   service("a", [(80, "TCP", 30080)], ip="198.51.100.9", shared="front"),
                   service("b", [(443, "TCP", 30443)], ip="198.51.100.9", shared="front"),
                   service("c", [(80, "TCP", 30081)], ip="198.51.100.9", shared="front"))
    plan = desired_external(spec, spec.providers[0], TCP_ONLY)
    (lb,) = plan.load_balancers
    assert lb.name == "kube_shared_kubernetes_front"
    assert lb.services == ("default/a", "default/b")
    assert [(x.port, x.service) for x in lb.listeners] == [(80, "default/a"), (443, "default/b")]
    (refusal,) = plan.refused
    assert refusal.service == "default/c" and refusal.why == Why.PORT_CLASH
    assert "port 80/TCP of shared load balancer kube_shared_kubernetes_front is already " \
           "default/a's" in refusal.message


def test_members_only_differ() -> None:
    base = [provider(), service("web", [(80, "TCP", 30080)], ip="198.51.100.9")]
    spec1 = spec_of(*base, *NODES)
    spec2 = spec_of(*base, NODES[0])
    (a,) = desired_external(spec1, spec1.providers[0], TCP_ONLY).load_balancers
    (b,) = desired_external(spec2, spec2.providers[0], TCP_ONLY).load_balancers
    assert a != b and a.members_only_differ(b)
    spec3 = spec_of(provider(), service("web", [(81, "TCP", 30080)], ip="198.51.100.9"), *NODES)
    (c,) = desired_external(spec3, spec3.providers[0], TCP_ONLY).load_balancers
    assert not a.members_only_differ(c)
