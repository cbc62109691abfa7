"""Weighted ECMP plan values (RFC 10005): each node's weight from its ready endpoints."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.foundation.test_plan import bgp_adv, load, node, peer, pool, service, slice_

from vipcast.core.allocation import allocate_spec
from vipcast.core.desired import NodePlan
from vipcast.core.notices import notices
from vipcast.core.pipeline import Local, NodeIdentity, plan, snapshot
from vipcast.core.plan import plan_all, plan_node
from vipcast.core.plan_document import plan_diff, plan_document
from vipcast.core.weights import UNIT, route_weight, weighted, with_weights
from vipcast.proto.bgp.ext_communities import LinkBandwidth, decode_link_bandwidth
from vipcast.spec import Spec


def weighted_spec(counts: dict[str, int], policy: str = "Local", weighted_ecmp: bool = True,
                  annotations: dict[str, str] | None = None) -> Spec:
    eps = [(f"10.244.{i}.{j + 1}", n, True)
           for i, (n, c) in enumerate(sorted(counts.items())) for j in range(c)]
    eps.append(("10.244.99.1", sorted(counts)[0], False))  # not ready: never counted
    nodes = []
    for n in sorted(counts):
        doc = node(n)
        if annotations and n in annotations:
            doc["metadata"]["annotations"] = {"vipcast.io/bgp-weight": annotations[n]}
        nodes.append(doc)
    adv: dict[str, Any] = {"ipAddressPools": ["p"]}
    if weighted_ecmp:
        adv["weightedECMP"] = "endpoints"
    return load(pool("p", "192.0.2.0/28"), peer("r"), bgp_adv("a", **adv), *nodes,
                service("web", policy), slice_("web", *eps))


def plans_of(spec: Spec) -> dict[str, NodePlan]:
    return weighted(spec, plan_all(spec, allocate_spec(spec).current()))


def weights(plans: dict[str, NodePlan]) -> dict[str, float | None]:
    return {n: (route_weight(p.bgp[0]) if p.bgp else None) for n, p in plans.items()}


def test_local_weights_are_the_ready_endpoint_counts() -> None:
    plans = plans_of(weighted_spec({"n1": 1, "n2": 2, "n5": 5}))
    assert weights(plans) == {"n1": 1.0, "n2": 2.0, "n5": 5.0}
    [value] = plans["n5"].bgp[0].extended_communities
    assert decode_link_bandwidth(value) == LinkBandwidth(64512, 5 * UNIT)


def test_without_the_opt_in_nothing_changes() -> None:
    spec = weighted_spec({"n1": 1, "n2": 2}, weighted_ecmp=False)
    raw = plan_all(spec, allocate_spec(spec).current())
    assert weighted(spec, raw) == raw
    assert all(p.bgp[0].extended_communities == () for p in raw.values())


def test_cluster_weights_come_from_the_node_annotation() -> None:
    spec = weighted_spec({"a": 1, "b": 1, "c": 1}, policy="Cluster",
                         annotations={"a": "3", "b": "NaN"})
    assert weights(plans_of(spec)) == {"a": 3.0, "b": 1.0, "c": 1.0}
    [issue] = [i for i in notices(spec) if i.kind == "Node"]
    assert issue.name == "b" and "positive finite" in issue.message
    assert issue.field == "metadata.annotations[vipcast.io/bgp-weight]"


def test_bad_annotations_never_withdraw_the_route() -> None:
    for bad in ("0", "-2", "inf", "lots", "1e30"):
        spec = weighted_spec({"a": 1, "b": 1}, policy="Cluster", annotations={"a": bad})
        plans = plans_of(spec)
        assert weights(plans) == {"a": 1.0, "b": 1.0}, bad
        assert [i.name for i in notices(spec) if i.kind == "Node"] == ["a"]


def test_plan_json_and_against_show_weights() -> None:
    old_spec, new_spec = weighted_spec({"n1": 1, "n2": 2}), weighted_spec({"n1": 3, "n2": 2})
    old, new = allocate_spec(old_spec), allocate_spec(new_spec)
    old_plans, new_plans = plans_of(old_spec), plans_of(new_spec)
    doc = plan_document(new, new_plans)
    route = doc["nodes"]["n1"]["bgp"][0]
    assert route["weight"] == 3.0
    assert route["extendedCommunities"] == [f"lb:64512:{3 * UNIT:g}"]
    diff = plan_diff(old, old_plans, new, new_plans)
    assert diff["nodes"]["n1"]["weightChanges"] == [
        {"prefix": new_plans["n1"].bgp[0].prefix, "before": 1.0, "after": 3.0}
    ]
    assert "n2" not in diff["nodes"]  # unchanged weight: no change listed
    # a weight change is the same prefix with a new attribute: an UPDATE, never a withdrawal
    assert diff["nodes"]["n1"]["routesWithdrawn"] == []


def test_the_snapshot_carries_weights_and_keeps_unchanged_routes_identical() -> None:
    spec = weighted_spec({"n1": 2, "n2": 1})
    duties = plan_node(spec, allocate_spec(spec).current(), "n1")
    ident = NodeIdentity("n1")
    snap = snapshot(spec, duties, ident)
    assert route_weight(plan(snap, Local()).bgp[0]) == 2.0
    again = snapshot(spec, duties, ident, snap, {})
    assert again.plan_base.bgp[0] is snap.plan_base.bgp[0]
    # weighting twice replaces the community, it does not add a second one
    twice = with_weights(spec, snap.plan_base)
    assert len(twice.bgp[0].extended_communities) == 1


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.sampled_from(["n1", "n2", "n3", "n4"]), st.integers(1, 6),
                       min_size=1))
def test_weights_are_a_function_of_the_endpoint_counts_alone(counts: dict[str, int]) -> None:
    spec = weighted_spec(counts)
    plans = plans_of(spec)
    # every node computes its own plan alone and gets the same community the whole-cluster
    # view gives it: count x UNIT, whatever the other nodes have
    for name, count in counts.items():
        alone = with_weights(spec, plan_node(spec, allocate_spec(spec).current(), name))
        assert alone.bgp == plans[name].bgp
        assert route_weight(alone.bgp[0]) == count
    # the same counts in any node naming give the same multiset of communities
    renamed = {f"x{n}": c for n, c in counts.items()}
    assert sorted(p.bgp[0].extended_communities for p in plans_of(weighted_spec(renamed)).values()
                  ) == sorted(p.bgp[0].extended_communities for p in plans.values())


def test_explain_and_status_show_each_nodes_weight() -> None:
    from rich.console import Console

    from vipcast.cli.agent_cmds import status_tables
    from vipcast.core.explain import explain

    spec = weighted_spec({"n1": 1, "n5": 5})
    story = explain(spec, allocate_spec(spec), "ns/web")
    assert story is not None
    how = {v.node: v.how for v in story.nodes}
    assert "with weight 5 (RFC 10005 link bandwidth)" in how["n5"][0]
    assert "with weight 1 " in how["n1"][0]
    document = {"node": "n5", "peers": [], "routes": [
        {"prefix": "192.0.2.0/32", "peers": ["r"], "services": ["ns/web"], "weight": 5.0}]}
    console = Console(width=200, record=True)
    for table in status_tables(document):
        console.print(table)
    text = console.export_text()
    assert "Weighted routes" in text and "192.0.2.0/32" in text and " 5 " in text
    unweighted = {**document, "routes": [{**document["routes"][0], "weight": None}]}
    assert len(status_tables(unweighted)) == len(status_tables(document)) - 1


def test_a_peer_without_extended_communities_gets_unweighted_routes_and_a_warning() -> None:
    base = weighted_spec({"n1": 1, "n2": 2})
    spec = load(pool("p", "192.0.2.0/28"), peer("r", extendedCommunities=False),
                bgp_adv("a", ipAddressPools=["p"], weightedECMP="endpoints"),
                node("n1"), service("web", "Local"),
                slice_("web", ("10.244.0.1", "n1", True)))
    assert weights(plans_of(spec)) == {"n1": None}
    assert plans_of(spec)["n1"].bgp  # still announced
    [issue] = [i for i in notices(spec) if i.kind == "BGPAdvertisement"]
    assert issue.field == "spec.weightedECMP" and "r take no extended communities" in issue.message
    assert not [i for i in notices(base) if i.kind == "BGPAdvertisement"]


def test_lab_backends_option_gives_weighted_endpoint_counts() -> None:
    from vipcast.app.lab.topology import LabOptions, lab_objects
    from vipcast.spec import load_documents

    def spec_of(opts: LabOptions) -> Spec:
        files = lab_objects(opts)
        return load_documents([(name, d) for name, docs in files.items() for d in docs])

    spec = spec_of(LabOptions(nodes=3, backends=(1, 2, 5)))
    plans = plans_of(spec)
    ip = allocate_spec(spec).assignments["default/web-local"].ips[0]
    got = {n: route_weight(r) for n, p in plans.items() for r in p.bgp
           if r.prefix == f"{ip}/32"}
    assert got == {"n1": 1.0, "n2": 2.0, "n3": 5.0}
    # without --backends: web-local on n1 and n2 with two pods each, nothing weighted
    plain = plans_of(spec_of(LabOptions(nodes=3)))
    assert all(r.extended_communities == () for p in plain.values() for r in p.bgp)
