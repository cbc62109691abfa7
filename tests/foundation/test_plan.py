"""The per-node plan: BGP routes, L2 owners, NAT rules and explanations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vipcast.core.allocation import allocate_spec
from vipcast.core.explain import explain
from vipcast.core.ownership import l2_candidates
from vipcast.core.plan import plan_all, plan_node
from vipcast.sources.files import load_paths
from vipcast.spec import Spec, load_documents

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
V = "vipcast.io/v1beta1"


def load(*docs: dict[str, Any]) -> Spec:
    return load_documents([("test.yaml", d) for d in docs])


def pool(name: str, *addresses: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": name},
            "spec": {"addresses": list(addresses), **spec}}


def node(name: str, ready: bool = True, **labels: str) -> dict[str, Any]:
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": status}


def service(name: str, policy: str = "Cluster", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy,
                     "ports": [{"name": "http", "port": 80}], **spec}}


def slice_(svc: str, *eps: tuple[str, str, bool], family: str = "IPv4") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{svc}-{family.lower()}", "namespace": "ns",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": family,
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [ip], "nodeName": n, "conditions": {"ready": r}}
                          for ip, n, r in eps]}


def peer(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": name},
            "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1", **spec}}


def bgp_adv(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": name},
            "spec": spec}


def l2_adv(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": V, "kind": "L2Advertisement", "metadata": {"name": name},
            "spec": spec}


def test_bgp_example_routes_communities_and_local_policy() -> None:
    spec = load_paths([EXAMPLES / "bgp"])
    result = allocate_spec(spec)
    plans = plan_all(spec, result.current())
    api_ip = result.assignments["shop/api"].ips[0]
    web_ip = result.assignments["shop/web"].ips[0]
    # Local policy: only node-c (the endpoint's node) announces api
    for name, p in plans.items():
        announced = {r.prefix for r in p.bgp}
        assert (f"{api_ip}/32" in announced) == (name == "node-c")
        assert f"{web_ip}/32" in announced
    route = next(r for r in plans["node-c"].bgp if r.prefix == f"{web_ip}/32")
    assert route.peers == ("router-a", "router-b")  # router-b selects rack r2 only
    assert next(r for r in plans["node-a"].bgp if r.prefix == f"{web_ip}/32").peers == (
        "router-a",
    )
    assert route.communities == ((65000 << 16) | 100, (65000 << 16) | 200)  # alias + literal
    assert route.large_communities == ((64512, 1, 2),)
    assert route.local_pref == 150
    assert route.services == ("shop/web",)
    # NAT: ready endpoints only, local flag per node
    rules = [n for n in plans["node-a"].nat if n.service == "shop/web" and n.port == 80]
    assert [(b.ip, b.port, b.local) for b in rules[0].backends] == [
        ("10.244.1.10", 8080, True),
        ("10.244.2.10", 8080, False),
    ]
    api_rules = [n for n in plans["node-c"].nat if n.service == "shop/api"]
    assert api_rules and all(b.local for r in api_rules for b in r.backends)
    assert api_ip in plans["node-c"].local_vips and api_ip not in plans["node-a"].local_vips
    assert plan_node(spec, result.current(), "node-c") == plans["node-c"]
    assert plan_node(spec, result.current(), "nowhere").bgp == ()


def test_aggregation_and_peer_selection() -> None:
    spec = load(
        pool("p", "192.0.2.0/24", "2001:db8::/120"),
        peer("a"), peer("b"),
        bgp_adv("agg", aggregationLength=24, aggregationLengthV6=120, peers=["b"]),
        node("n1"),
        service("s", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]),
        slice_("s", ("10.1.0.1", "n1", True)),
    )
    result = allocate_spec(spec)
    plan = plan_node(spec, result.current(), "n1")
    assert [(r.prefix, r.peers) for r in plan.bgp] == [
        ("192.0.2.0/24", ("b",)),
        ("2001:db8::/120", ("b",)),
    ]
    # NAT for the IPv6 VIP has no IPv6 backend: none is ready in that family
    v6 = [n for n in plan.nat if ":" in n.vip]
    assert v6 and v6[0].backends == ()


def test_no_ready_endpoint_means_not_announced() -> None:
    spec = load(
        pool("p", "192.0.2.0/28"), peer("a"), bgp_adv("all"), node("n1"),
        service("s"), slice_("s", ("10.1.0.1", "n1", False)),
    )
    result = allocate_spec(spec)
    assert result.assignments["ns/s"].ips
    plan = plan_node(spec, result.current(), "n1")
    assert plan.bgp == () and plan.nat == () and plan.local_vips == ()
    story = explain(spec, result, "ns/s")
    assert story is not None and "no ready endpoint" in story.notes[0]


def test_l2_one_owner_everyone_agrees_and_not_ready_excluded() -> None:
    nodes = [node(f"w{i}") for i in range(5)] + [node("down", ready=False)]
    services = [service(f"s{i}") for i in range(8)]
    slices = [slice_(f"s{i}", (f"10.1.0.{i}", "w0", True)) for i in range(8)]
    spec = load(pool("p", "192.0.2.0/27"), l2_adv("lan", interfaces=["eth0"]),
                *nodes, *services, *slices)
    result = allocate_spec(spec)
    plans = plan_all(spec, result.current())
    owners: dict[str, set[str]] = {}
    for name, p in plans.items():
        for own in p.l2:
            owners.setdefault(own.ip, set()).add(own.owner)
            assert name in own.candidates and "down" not in own.candidates
            assert own.interfaces == ("eth0",)
            assert own.candidates == l2_candidates(own.ip, [f"w{i}" for i in range(5)])
    assert len(owners) == 8 and all(len(o) == 1 for o in owners.values())
    assert len({next(iter(o)) for o in owners.values()}) > 1  # spread across nodes
    assert plans["down"].l2 == () and plans["down"].nat == ()


def test_l2_local_policy_and_node_selectors() -> None:
    spec = load(
        pool("p", "192.0.2.0/28"),
        l2_adv("lan", nodeSelectors=[{"matchLabels": {"zone": "a"}}]),
        node("a1", zone="a"), node("a2", zone="a"), node("b1", zone="b"),
        service("local", policy="Local"), slice_("local", ("10.1.0.1", "a2", True),
                                                 ("10.1.0.2", "b1", True)),
    )
    result = allocate_spec(spec)
    plans = plan_all(spec, result.current())
    assert [o.owner for o in plans["a2"].l2] == ["a2"]
    assert plans["a1"].l2 == () and plans["b1"].l2 == ()
    story = explain(spec, result, "ns/local")
    assert story is not None
    verdicts = {v.node: v for v in story.nodes}
    assert verdicts["a2"].announces
    assert "no ready endpoint here" in verdicts["a1"].why_not[0]
    assert "nodeSelectors" in verdicts["b1"].why_not[0]


def test_shared_ip_one_route_both_services() -> None:
    spec = load_paths([EXAMPLES / "dualstack"])
    result = allocate_spec(spec)
    plans = plan_all(spec, result.current())
    shared = result.assignments["default/dns-tcp"].ips
    assert shared == result.assignments["default/dns-udp"].ips
    route = next(r for r in plans["node-1"].bgp if r.prefix == f"{shared[0]}/32")
    assert route.services == ("default/dns-tcp", "default/dns-udp")
    assert route.communities == (0xFFFFFF01,)
    web = result.assignments["default/web"].ips
    assert len(web) == 2 and ":" in web[0]  # IPv6 first


def test_plan_is_deterministic_under_input_order() -> None:
    spec = load_paths([EXAMPLES / "bgp"])
    result = allocate_spec(spec)
    again = plan_all(spec, dict(reversed(list(result.current().items()))),
                     nodes=list(reversed(spec.nodes)))
    assert again == plan_all(spec, result.current())


def test_overlapping_advertisements_merge_per_peer() -> None:
    spec = load(
        pool("p", "192.0.2.0/28"), peer("a"), peer("b"),
        bgp_adv("one", communities=["65000:1"], localPref=100, peers=["a"]),
        bgp_adv("two", communities=["65000:2", "large:1:2:3"], localPref=200),
        node("n1"), service("s"), slice_("s", ("10.1.0.1", "n1", True)),
    )
    result = allocate_spec(spec)
    routes = plan_node(spec, result.current(), "n1").bgp
    by_peer = {p: r for r in routes for p in r.peers}
    assert set(by_peer) == {"a", "b"} and len(routes) == 2
    assert by_peer["a"].communities == ((65000 << 16) | 1, (65000 << 16) | 2)
    assert by_peer["a"].local_pref == 200 and by_peer["a"].large_communities == ((1, 2, 3),)
    assert by_peer["b"].communities == ((65000 << 16) | 2,)


def test_advertisements_with_and_without_local_pref_on_one_prefix() -> None:
    # localPref 0 beside an unset one: the route keys differ only there (None < 0 used to
    # raise TypeError while sorting them); the merged route carries the value that is set
    spec = load(
        pool("p", "192.0.2.0/28"), peer("a"), peer("b"),
        bgp_adv("unset", aggregationLength=28), bgp_adv("zero", aggregationLength=28, localPref=0),
        node("n1"), service("s"), slice_("s", ("10.1.0.1", "n1", True)),
    )
    routes = plan_node(spec, allocate_spec(spec).current(), "n1").bgp
    assert [(r.prefix, r.peers, r.local_pref) for r in routes] == [
        ("192.0.2.0/28", ("a", "b"), 0)]
