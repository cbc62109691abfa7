"""core/first_routes: a node's routes alone are exactly the routes of its whole plan.

Generated configs vary what the routes depend on: node readiness and labels, peers and their
node selectors, several pools (IPv4 and IPv6), BGP advertisements with pool selections,
aggregation lengths, communities, localPref, peer lists and node selectors (two of them may
announce one prefix: then node_routes gives None), L2 advertisements beside them, Services
with either traffic policy, one or two families, pinned and shared addresses, endpoints
ready or not, on any node.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from random_slices import slice_document
from vipcast.core.allocation import allocate_spec
from vipcast.core.desired import NodeIdentity
from vipcast.core.first_routes import first_routes, node_routes
from vipcast.core.pipeline import Local, plan, snapshot
from vipcast.core.plan import plan_node
from vipcast.spec import Spec
from vipcast.spec.load import load_documents

V = "vipcast.io/v1beta1"
NODES = [f"n{i}" for i in range(4)]
PEERS = ["r1", "r2", "r3"]
POOLS = {"a": ["192.0.2.0/27", "2001:db8::/120"], "b": ["198.51.100.0/28"]}


def _selector(draw: st.DrawFn) -> list[dict[str, Any]]:
    label = draw(st.sampled_from([None, None, "x", "y"]))
    return [] if label is None else [{"matchLabels": {label: "yes"}}]


@st.composite
def configs(draw: st.DrawFn) -> Spec:
    docs: list[dict[str, Any]] = []
    for name, addresses in POOLS.items():
        docs.append({"apiVersion": V, "kind": "IPAddressPool",
                     "metadata": {"name": name, "labels": {"pool": name}},
                     "spec": {"addresses": addresses}})
    peers = PEERS[:draw(st.integers(1, len(PEERS)))]
    for name in peers:
        docs.append({"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": name},
                     "spec": {"myASN": 64512, "peerASN": 64500,
                              "peerAddress": f"10.0.0.{PEERS.index(name) + 1}",
                              "nodeSelectors": _selector(draw)}})
    for i in range(draw(st.sampled_from([1, 1, 2, 3]))):
        spec: dict[str, Any] = {
            "aggregationLength": draw(st.sampled_from([32, 32, 30, 28])),
            "aggregationLengthV6": draw(st.sampled_from([128, 124])),
            "nodeSelectors": _selector(draw),
            "peers": draw(st.lists(st.sampled_from(peers), unique=True, max_size=2)),
        }
        pools = draw(st.sampled_from([[], ["a"], ["b"], ["a", "b"]]))
        if pools:
            spec["ipAddressPools"] = pools
        if draw(st.booleans()):
            spec["localPref"] = draw(st.sampled_from([0, 100, 200]))
        if draw(st.booleans()):
            spec["communities"] = draw(st.lists(
                st.sampled_from(["65000:1", "65000:2", "large:1:2:3"]), unique=True,
                min_size=1, max_size=2))
        docs.append({"apiVersion": V, "kind": "BGPAdvertisement",
                     "metadata": {"name": f"bgp{i}"}, "spec": spec})
    if draw(st.booleans()):
        docs.append({"apiVersion": V, "kind": "L2Advertisement", "metadata": {"name": "l2"},
                     "spec": {"nodeSelectors": _selector(draw)}})
    for name in NODES:
        labels = {k: "yes" for k in ("x", "y") if draw(st.booleans())}
        ready = draw(st.sampled_from([True, True, False])) or name == "n0"
        docs.append({"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": name, "labels": labels},
                     "status": {"conditions": [{"type": "Ready",
                                                "status": "True" if ready else "False"}]}})
    pinned = draw(st.lists(st.sampled_from(["192.0.2.5", "192.0.2.6", "198.51.100.3"]),
                           max_size=3))
    for i in range(draw(st.integers(1, 8))):
        name = f"s{i}"
        annotations: dict[str, str] = {}
        if i < len(pinned):
            annotations["vipcast.io/loadBalancerIPs"] = pinned[i]
            annotations["vipcast.io/allow-shared-ip"] = "shared"
        dual = draw(st.booleans())
        docs.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ns", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "p", "port": 80}],
                     "externalTrafficPolicy": draw(st.sampled_from(["Cluster", "Local"])),
                     "ipFamilyPolicy": "RequireDualStack" if dual and not annotations
                     else "SingleStack",
                     "ipFamilies": ["IPv4", "IPv6"] if dual and not annotations else ["IPv4"]},
        })
        endpoints = [
            {"addresses": [f"10.1.{i}.{j}"], "nodeName": node,
             "conditions": {"ready": draw(st.sampled_from([True, True, False]))}}
            for j, node in enumerate(draw(st.lists(st.sampled_from(NODES), min_size=i % 4 > 0,
                                                  max_size=3)))
        ]
        if endpoints:
            docs.append(slice_document(name, endpoints))
    return load_documents([("gen", d) for d in docs])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.sampled_from(["n0", "n0", *NODES, "elsewhere"]))
def test_node_routes_are_the_plans_routes(spec: Spec, node: str) -> None:
    assignments = allocate_spec(spec).current()
    whole = plan_node(spec, assignments, node).bgp
    alone = node_routes(spec, assignments, node)
    event("merged: left to the plan" if alone is None
          else f"{min(len(whole), 3)}{'+' if len(whole) >= 3 else ''} route(s)")
    if alone is None:  # two advertisements of one prefix: only where the plan merges
        assert len(spec.bgp_advertisements) > 1
        return
    assert alone == whole  # the same values in the same order


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.sampled_from(NODES), st.booleans())
def test_first_routes_are_the_first_plans(spec: Spec, node: str, restarting: bool) -> None:
    """What a starting agent sends first is what the first whole plan (the snapshot's, with
    nothing observed yet) announces, sessions included."""
    assignments = allocate_spec(spec).current()
    identity = NodeIdentity(node, "10.9.9.9", restarting)
    early = first_routes(spec, assignments, identity)
    first = plan(snapshot(spec, plan_node(spec, assignments, node), identity), Local())
    if early is None:
        return
    routes, sessions = early
    assert routes == first.bgp
    assert sessions == first.peers


def test_merged_prefixes_are_left_to_the_plan() -> None:
    """Two advertisements announcing one prefix: the plan merges their attributes, so the
    routes alone are not given (the agent plans the whole node first)."""
    docs: list[dict[str, Any]] = [
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "a"},
         "spec": {"addresses": ["192.0.2.0/27"]}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "r1"},
         "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1"}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "one"},
         "spec": {"communities": ["65000:1"]}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "two"},
         "spec": {"communities": ["65000:2"], "localPref": 200}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n0"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "ns"},
         "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "s", "namespace": "ns",
                      "labels": {"kubernetes.io/service-name": "s"}},
         "addressType": "IPv4", "ports": [{"port": 8080}],
         "endpoints": [{"addresses": ["10.1.0.1"], "nodeName": "n0"}]},
    ]
    spec = load_documents([("t", d) for d in docs])
    assignments = allocate_spec(spec).current()
    (merged,) = plan_node(spec, assignments, "n0").bgp
    assert merged.communities == (65000 << 16 | 1, 65000 << 16 | 2)
    assert node_routes(spec, assignments, "n0") is None
