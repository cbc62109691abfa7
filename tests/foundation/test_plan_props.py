"""Plan invariants over random clusters: one L2 owner per address, eligibility, determinism."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from random_slices import slice_document
from vipcast.core.allocation import allocate_spec
from vipcast.core.plan import plan_all, plan_node
from vipcast.sources.state import read_state
from vipcast.spec import Spec, load_documents

V = "vipcast.io/v1beta1"
NODES = [f"n{i}" for i in range(5)]


@st.composite
def clusters(draw: st.DrawFn) -> Spec:
    docs: list[dict[str, Any]] = [
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "p"},
         "spec": {"addresses": ["192.0.2.0/28", "2001:db8::/124"]}},
        {"apiVersion": V, "kind": "L2Advertisement", "metadata": {"name": "l2"},
         "spec": {"nodeSelectors": [{"matchLabels": {"l2": "yes"}}]}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "r"},
         "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1",
                  "nodeSelectors": [{"matchLabels": {"bgp": "yes"}}]}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "bgp"}},
    ]
    for name in NODES:
        labels = {k: "yes" for k in ("l2", "bgp") if draw(st.booleans())}
        ready = draw(st.booleans())
        docs.append({"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": name, "labels": labels},
                     "status": {"conditions": [{"type": "Ready",
                                                "status": "True" if ready else "False"}]}})
    for i in range(draw(st.integers(1, 6))):
        name = f"s{i}"
        spec: dict[str, Any] = {
            "type": "LoadBalancer",
            "externalTrafficPolicy": draw(st.sampled_from(["Cluster", "Local"])),
            "ports": [{"name": "p", "port": 80}],
            "ipFamilyPolicy": draw(st.sampled_from(["SingleStack", "RequireDualStack"])),
            "ipFamilies": ["IPv4", "IPv6"],
        }
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": "ns"}, "spec": spec})
        endpoints = [
            {"addresses": [f"10.0.{i}.{j}"], "nodeName": node,
             "conditions": {"ready": draw(st.booleans())}}
            for j, node in enumerate(draw(st.lists(st.sampled_from(NODES), max_size=3)))
        ]
        if endpoints:
            docs.append(slice_document(name, endpoints))
    return load_documents([("gen", d) for d in docs])


@given(clusters())
def test_plan_invariants(spec: Spec) -> None:
    result = allocate_spec(spec)
    plans = plan_all(spec, result.current())
    nodes = {n.metadata.name: n for n in spec.nodes}
    ready_eps: dict[str, set[str]] = {}
    for s in spec.endpoint_slices:
        for ep in s.endpoints:
            if ep.is_ready and ep.node_name and s.service_key:
                ready_eps.setdefault(s.service_key, set()).add(ep.node_name)
    owners: dict[str, set[str]] = {}
    for name, plan in plans.items():
        node = nodes[name]
        assert plan == plan_node(spec, result.current(), name)
        for own in plan.l2:
            owners.setdefault(own.ip, set()).add(own.owner)
            assert node.ready and node.metadata.labels.get("l2") == "yes"
            assert own.owner in own.candidates and name in own.candidates
        for route in plan.bgp:
            assert node.ready and route.peers == ("r",)
        for svc_key in {k for r in plan.bgp for k in r.services} | {
            k for o in plan.l2 for k in o.services
        }:
            assert svc_key in ready_eps  # never announced without a ready endpoint
            service = spec.service(svc_key)
            assert service is not None
            if service.spec.external_traffic_policy == "Local":
                assert name in ready_eps[svc_key]
        for rule in plan.nat:
            if rule.traffic_policy == "Local":
                assert all(b.local for b in rule.backends)
    # every node that takes part agrees on the one owner of each address
    assert all(len(o) == 1 for o in owners.values())


@given(st.binary(max_size=200))
def test_state_reader_never_raises(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("state") / ".vipcast-state.json"
    path.write_bytes(data)
    got = read_state(path)
    assert got.problem is not None or isinstance(got.assignments, dict)
