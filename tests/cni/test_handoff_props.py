"""The hand-off plan over random clusters: exactly the hand-off peers' routes, /32 and /128
entries only for Calico (never the pool CIDR), per-neighbor prefixes for FRR-K8s."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from random_slices import slice_document
from vipcast.core.allocation import allocate_spec
from vipcast.core.handoff import (
    bird_include,
    calico_hand_off,
    calico_service_lb_ips,
    frr_configuration,
    hand_off_targets,
    handed_routes,
)
from vipcast.core.plan import plan_all
from vipcast.spec import Spec, load_documents

V = "vipcast.io/v1beta1"
NODES = [f"n{i}" for i in range(4)]
POOL_V4, POOL_V6 = "198.51.100.0/28", "2001:db8:5::/124"


@st.composite
def clusters(draw: st.DrawFn) -> tuple[Spec, str]:
    target = draw(st.sampled_from(["calico", "frrK8s", "birdInclude"]))
    hand_off: dict[str, Any] = {
        "calico": {"calico": {}},
        "frrK8s": {"frrK8s": {"namespace": "frr"}},
        "birdInclude": {"birdInclude": {"path": "/run/vipcast/handoff.conf"}},
    }[target]
    docs: list[dict[str, Any]] = [
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "p"},
         "spec": {"addresses": [POOL_V4, POOL_V6]}},
        {"apiVersion": V, "kind": "CNISpeaker", "metadata": {"name": "cni"},
         "spec": {"asn": 64512, "routers": [{"peerAddress": "192.0.2.1"},
                                            {"peerAddress": "2001:db8::1"}],
                  "handOff": hand_off}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "tor"},
         "spec": {"coexistence": "HandOff", "myASN": 64512, "peerASN": 65000,
                  "peerAddress": "192.0.2.1",
                  "nodeSelectors": [{"matchLabels": {"cni": "yes"}}]}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "tor6"},
         "spec": {"coexistence": "HandOff", "myASN": 64512, "peerASN": 65000,
                  "peerAddress": "2001:db8::1"}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "own"},
         "spec": {"myASN": 64513, "peerASN": 65001, "peerAddress": "192.0.2.99"}},
    ]
    for i in range(draw(st.integers(1, 3))):
        spec: dict[str, Any] = {
            "aggregationLength": draw(st.sampled_from([28, 30, 32])),
            "aggregationLengthV6": draw(st.sampled_from([124, 128])),
            "peers": draw(st.lists(st.sampled_from(["tor", "tor6", "own"]), unique=True)),
        }
        if draw(st.booleans()):
            spec["communities"] = draw(st.lists(st.sampled_from(
                ["65000:100", "large:1:2:3", "no-export"]), unique=True, min_size=1))
        if draw(st.booleans()):
            spec["localPref"] = draw(st.integers(0, 500))
        docs.append({"apiVersion": V, "kind": "BGPAdvertisement",
                     "metadata": {"name": f"a{i}"}, "spec": spec})
    for name in NODES:
        labels = {"cni": "yes"} if draw(st.booleans()) else {}
        docs.append({"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": name, "labels": labels}})
    for i in range(draw(st.integers(1, 8))):
        name = f"s{i}"
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": "ns"},
                     "spec": {"type": "LoadBalancer",
                              "externalTrafficPolicy": draw(st.sampled_from(["Cluster",
                                                                             "Local"])),
                              "ports": [{"name": "p", "port": 80}],
                              "ipFamilyPolicy": draw(st.sampled_from(
                                  ["SingleStack", "RequireDualStack"])),
                              "ipFamilies": ["IPv4", "IPv6"]}})
        endpoints = [{"addresses": [f"10.0.{i}.{j}"], "nodeName": node,
                      "conditions": {"ready": True}}
                     for j, node in enumerate(draw(st.lists(st.sampled_from(NODES),
                                                             max_size=2)))]
        if endpoints:
            docs.append(slice_document(name, endpoints))
    return load_documents([("gen", d) for d in docs]), target


@given(clusters())
def test_hand_off_is_exactly_the_hand_off_peers_routes(case: tuple[Spec, str]) -> None:
    spec, kind = case
    result = allocate_spec(spec, {})
    allocated = {ip for ips in result.current().values() for ip in ips}
    plans = plan_all(spec, result.current())
    every: list[Any] = []
    for node, plan in plans.items():
        targets = hand_off_targets(spec, node)
        labelled = spec.node(node).metadata.labels.get("cni") == "yes"  # type: ignore[union-attr]
        expected_peers = {"tor6", *(("tor",) if labelled else ())}
        assert [t.kind for t in targets] == [kind]
        (target,) = targets
        assert {n.name for n in target.neighbors} == expected_peers
        routes = handed_routes(plan, target)
        # reference: the plan's routes that name a hand-off peer of this node, nothing else
        # (one route per prefix and peer: a prefix may come twice, for different peers)
        reference_pairs = {(r.prefix, p) for r in plan.bgp for p in r.peers
                           if p in expected_peers}
        assert {(r.prefix, p) for r in routes for p in r.neighbors} == reference_pairs
        reference: dict[str, set[str]] = {}
        for prefix, p in reference_pairs:
            reference.setdefault(prefix, set()).add(p)
        for r in routes:
            net = ipaddress.ip_network(r.prefix)
            assert r.vips, r
            assert all(ipaddress.ip_address(v) in net and v in allocated for v in r.vips)
        assert handed_routes(plan, target) == routes  # deterministic
        every.extend(routes)
        if kind == "frrK8s":
            obj = frr_configuration(node, target, routes)
            (router,) = obj["spec"]["bgp"]["routers"]
            assert router["asn"] == 64512
            assert set(router["prefixes"]) == set(reference)
            for neighbor in router["neighbors"]:
                name = "tor" if neighbor["address"] == "192.0.2.1" else "tor6"
                allowed = set(neighbor["toAdvertise"]["allowed"]["prefixes"])
                assert allowed == {p for p, to in reference.items() if name in to}
                for entry in neighbor["toAdvertise"].get("withCommunity", ()):
                    assert set(entry["prefixes"]) <= allowed
                for entry in neighbor["toAdvertise"].get("withLocalPref", ()):
                    assert set(entry["prefixes"]) <= allowed
            assert obj["spec"]["nodeSelector"] == {
                "matchLabels": {"kubernetes.io/hostname": node}}
        if kind == "birdInclude":
            text = bird_include(node, target, routes)
            for prefix in reference:
                assert text.count(f"route {prefix} blackhole") == 1
    entries = calico_service_lb_ips(every)
    cidrs = [e["cidr"] for e in entries]
    assert len(cidrs) == len(set(cidrs))
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr)
        assert net.prefixlen == net.max_prefixlen, cidr  # never a range: Calico would
        assert str(net.network_address) in allocated      # announce all of it
    assert POOL_V4 not in cidrs and POOL_V6 not in cidrs
    assert {ipaddress.ip_network(c).network_address for c in cidrs} == {
        ipaddress.ip_address(v) for r in every for v in r.vips}


@given(clusters())
def test_calico_entries_are_the_handed_vips_as_host_routes(case: tuple[Spec, str]) -> None:
    spec, kind = case
    result = allocate_spec(spec, {})
    entries = calico_hand_off(spec, result.current())
    if kind != "calico":
        assert entries == {}
        return
    cidrs = [e["cidr"] for e in entries["default"]]
    # reference: every allocated address, if some advertisement reaches a hand-off peer
    handed = any(not a.spec.peers or {"tor", "tor6"} & set(a.spec.peers)
                 for a in spec.bgp_advertisements)
    allocated = {ip for ips in result.current().values() for ip in ips}
    expected = {ipaddress.ip_address(ip) for ip in allocated} if handed else set()
    assert {ipaddress.ip_network(c).network_address for c in cidrs} == expected
    assert len(cidrs) == len(set(cidrs))
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr)
        assert net.prefixlen == net.max_prefixlen, cidr  # never the pool or any range
    assert calico_hand_off(spec, result.current()) == entries  # deterministic
