"""The optimised planner against a straightforward reference, and against its earlier output.

The reference below walks the spec the plain way (every service, address, advertisement and
node, with :mod:`ipaddress`), computing what each node must announce and forward; the planner
must agree with it on random clusters. ``data/plan_digests.json`` holds digests of the plans
the planner produced on the seeded clusters of :mod:`plan_cases` before it was optimised.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from plan_cases import cluster_documents, digest, plan_data

from vipcast.alloc.pools import ip_text, parse_address
from vipcast.core.allocation import allocate_spec
from vipcast.core.desired import Backend, NatRule, NodePlan
from vipcast.core.ownership import l2_candidates
from vipcast.core.plan import plan_all, plan_node
from vipcast.spec import Service, Spec, load_documents

DIGESTS = Path(__file__).parent / "data" / "plan_digests.json"


def spec_of(seed: int, services: int = 60) -> Spec:
    return load_documents([("gen", d) for d in cluster_documents(seed, services)])


def test_plans_equal_those_before_the_optimisation() -> None:
    expected = json.loads(DIGESTS.read_text())
    for seed, want in expected.items():
        spec = spec_of(int(seed))
        current = allocate_spec(spec).current()
        assert digest({k: list(v) for k, v in current.items()}) == want["assignments"]
        plans = plan_all(spec, current)
        got = {name: digest(plan_data(plan)) for name, plan in plans.items()}
        assert got == want["plans"], f"seed {seed}"
        assert plan_node(spec, current, "n1") == plans["n1"]


# ---------------------------------------------------------------- the reference


def _ready_endpoints(spec: Spec, key: str) -> list[tuple[str, int, str | None, Any]]:
    seen: dict[tuple[str, str | None], tuple[str, int, str | None, Any]] = {}
    for s in spec.endpoint_slices:
        if s.service_key != key or s.address_type == "FQDN":
            continue
        for ep in s.endpoints:
            if ep.is_ready:
                for ip in ep.addresses:
                    family = 6 if s.address_type == "IPv6" else 4
                    seen.setdefault((ip, ep.node_name), (ip, family, ep.node_name, s.ports))
    return list(seen.values())


def _backends(service: Service, port: Any, eps: list[Any], family: int, node: str) -> list[Any]:
    out = []
    for ip, ep_family, ep_node, slice_ports in eps:
        if ep_family != family:
            continue
        if not slice_ports:
            number = port.target_port if isinstance(port.target_port, int) else port.port
        else:
            number = next((p.port for p in slice_ports if (p.name or None) == (port.name or None)
                           and p.protocol == port.protocol), None)
        if number is None:
            continue
        local = ep_node == node
        if service.spec.external_traffic_policy == "Local" and not local:
            continue
        out.append(Backend(ip, number, ep_node, local, True))
    return sorted(out)


def reference(spec: Spec, current: dict[str, tuple[str, ...]], node: str) -> dict[str, Any]:
    """What ``node`` announces and forwards, computed the plain way."""
    nodes = {n.metadata.name: n for n in spec.nodes}
    me = nodes[node]
    labels = me.metadata.labels

    def selected(selectors: Any, node_labels: Any) -> bool:
        return not selectors or any(s.matches(node_labels) for s in selectors)

    def pool_of(ip: str) -> str | None:
        addr = ipaddress.ip_address(ip)
        for pool in spec.pools:
            for rng in pool.spec.ranges:
                if rng.version == addr.version and rng.first <= int(addr) <= rng.last:
                    return pool.name
        return None

    nat: list[NatRule] = []
    vips: set[str] = set()
    # (prefix, peer) -> (communities, large communities, localPrefs, services)
    routes: dict[tuple[str, str], tuple[set[int], set[Any], list[int], set[str]]] = {}
    l2: dict[str, set[str]] = {}  # address -> services answered for it
    for key, ips in sorted(current.items()):
        service = spec.service(key)
        assert service is not None
        eps = _ready_endpoints(spec, key)
        if not eps:
            continue
        local_nodes = {e[2] for e in eps if e[2]}
        is_local = service.spec.external_traffic_policy == "Local"
        for ip in sorted(ips):
            pool = pool_of(ip)
            family = ipaddress.ip_address(ip).version
            announces = False
            if not me.ready or (is_local and node not in local_nodes):
                continue
            for adv in spec.bgp_advertisements:
                pools = spec.pools_selected(adv.spec.ip_address_pools,
                                            adv.spec.ip_address_pool_selectors)
                if pool not in {p.name for p in pools}:
                    continue
                if not selected(adv.spec.node_selectors, labels):
                    continue
                peers = [p.name for p in spec.peers
                         if (not adv.spec.peers or p.name in adv.spec.peers)
                         and selected(p.spec.node_selectors, labels)]
                length = adv.spec.aggregation_length if family == 4 else (
                    adv.spec.aggregation_length_v6)
                prefix = str(ipaddress.ip_network(f"{ip}/{length}", strict=False))
                values = [spec.resolve_community(c) for c in adv.spec.communities]
                for peer in peers:
                    announces = True
                    std, large, prefs, services = routes.setdefault(
                        (prefix, peer), (set(), set(), [], set()))
                    std.update(v for v in values if isinstance(v, int))
                    large.update(v for v in values if isinstance(v, tuple))
                    if adv.spec.local_pref is not None:
                        prefs.append(adv.spec.local_pref)
                    services.add(key)
            for l2adv in spec.l2_advertisements:
                pools = spec.pools_selected(l2adv.spec.ip_address_pools,
                                            l2adv.spec.ip_address_pool_selectors)
                if pool in {p.name for p in pools} and selected(l2adv.spec.node_selectors,
                                                                 labels):
                    announces = True
                    l2.setdefault(ip, set()).add(key)
            if not announces:
                continue
            vips.add(ip)
            for port in service.spec.ports:
                nat.append(NatRule(key, ip, port.port, port.protocol,
                                   tuple(_backends(service, port, eps, family, node)),
                                   service.spec.external_traffic_policy,
                                   service.spec.load_balancer_source_ranges))
    return {
        "nat": sorted(nat),
        "vips": vips,
        "routes": {k: (v[0], v[1], max(v[2], default=None), v[3]) for k, v in routes.items()},
        "l2": l2,
    }


def check_against_reference(spec: Spec, plan: NodePlan, current: Any) -> None:
    want = reference(spec, current, plan.node)
    assert sorted(plan.nat) == want["nat"]
    assert set(plan.local_vips) == want["vips"]
    assert list(plan.local_vips) == sorted(plan.local_vips, key=parse_address)
    got_routes = {}
    for route in plan.bgp:
        for peer in route.peers:
            assert (route.prefix, peer) not in got_routes  # one attribute set per (prefix, peer)
            got_routes[(route.prefix, peer)] = (set(route.communities),
                                                set(route.large_communities),
                                                route.local_pref, set(route.services))
    assert got_routes == want["routes"]
    assert {own.ip: set(own.services) >= want["l2"][own.ip] for own in plan.l2} == {
        ip: True for ip in want["l2"]
    }
    for own in plan.l2:
        assert own.owner == own.candidates[0]
        assert own.candidates == l2_candidates(own.ip, own.candidates)


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 2**32), st.integers(1, 40))
def test_plan_matches_the_reference(seed: int, services: int) -> None:
    spec = spec_of(seed, services)
    current = allocate_spec(spec).current()
    for name, plan in plan_all(spec, current).items():
        assert plan.node == name
        check_against_reference(spec, plan, current)


# ---------------------------------------------------------------- address text


def v6_texts() -> st.SearchStrategy[str]:
    group = st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=5)
    return st.one_of(
        st.lists(group, min_size=1, max_size=10).map(":".join),
        st.builds(lambda a, b: f"{':'.join(a)}::{':'.join(b)}",
                  st.lists(group, max_size=8), st.lists(group, max_size=8)),
        st.integers(0, 2**128 - 1).map(lambda v: str(ipaddress.IPv6Address(v))),
        st.integers(0, 2**128 - 1).map(lambda v: ipaddress.IPv6Address(v).exploded),
        st.text(alphabet="0123456789abcdefx:.%/ ", max_size=45),
    )


@given(v6_texts())
def test_ipv6_fast_parse_agrees_with_ipaddress(text: str) -> None:
    try:
        want: tuple[int, int] | None = (6, int(ipaddress.IPv6Address(text.strip())))
    except ValueError:
        want = None
    if ":" not in text:
        return
    try:
        got: tuple[int, int] | None = parse_address(text)
    except ValueError:
        got = None
    assert got == want


@given(st.integers(0, 2**128 - 1) | st.sampled_from([0, 1, 2**128 - 1, 1 << 64, 0xFFFF << 32]))
def test_ipv6_text_is_what_ipaddress_writes(value: int) -> None:
    assert ip_text(6, value) == str(ipaddress.IPv6Address(value))


@given(st.one_of(
    st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v))),
    st.lists(st.text(alphabet="0123456789+-_ ", max_size=4), min_size=4, max_size=4).map(
        ".".join),
    st.text(alphabet="0123456789.٣²", max_size=16),
))
def test_ipv4_fast_parse_agrees_with_ipaddress(text: str) -> None:
    try:
        want: tuple[int, int] | None = (4, int(ipaddress.IPv4Address(text.strip())))
    except ValueError:
        want = None
    try:
        got: tuple[int, int] | None = parse_address(text)
    except ValueError:
        got = None
    assert got == want
