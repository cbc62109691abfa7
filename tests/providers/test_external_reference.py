"""The external-LB model against a plain reference on random clusters, plus its invariants."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from lb_objects import Doc, node, provider, service, slice_, spec_of

from vipcast.core.external import Capabilities, desired_external
from vipcast.spec import Spec

CAPS = Capabilities("haproxy", frozenset({"TCP"}))


def cluster(seed: int, members: str) -> list[Doc]:
    rnd = random.Random(seed)
    docs: list[Doc] = [provider(members=members)]
    for i in range(rnd.randint(0, 5)):
        docs.append(node(f"n{i}", f"10.0.0.{i + 1}", ready=rnd.random() > 0.2))
    for i in range(rnd.randint(0, 8)):
        ports = rnd.sample([80, 443, 53, 8080], rnd.randint(0, 3))
        spec_ports = [(p, "UDP" if p == 53 else "TCP", 30000 + p if rnd.random() > 0.1 else None)
                      for p in ports]
        shared = rnd.choice([None, None, "s1", "s2"])
        docs.append(service(f"svc{i}", spec_ports, ip=f"198.51.100.{rnd.choice([1, 2, i + 10])}",
                            cls=rnd.choice(["vipcast.io/haproxy"] * 4 + [None]), shared=shared))
        eps = [(f"10.1.{i}.{j}", f"n{rnd.randint(0, 4)}", rnd.random() > 0.3)
               for j in range(rnd.randint(0, 4))]
        if eps:
            docs.append(slice_(f"svc{i}", eps, [(f"p{p}", 9000 + p) for p in ports]))
    return docs


def reference_members(spec: Spec, key: str, port: int, node_port: int | None,
                      members: str) -> set[tuple[str, int]]:
    """Plainly: ready nodes' first InternalIP on the nodePort, or ready endpoints' target port."""
    if members == "nodes":
        return {(n.status.addresses[0].address, node_port or 0) for n in spec.nodes
                if all(c.status == "True" for c in n.status.conditions if c.type == "Ready")}
    out = set()
    for s in spec.endpoint_slices:
        if s.service_key != key:
            continue
        for ep in s.endpoints:
            if ep.conditions.ready is not False:
                for p in s.ports:
                    if p.name == f"p{port}" and p.port:
                        out.add((ep.addresses[0], p.port))
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["nodes", "pods"]))
def test_model_agrees_with_the_reference(seed: int, members: str) -> None:
    docs = cluster(seed, members)
    spec = spec_of(*docs)
    plan = desired_external(spec, spec.providers[0], CAPS)
    placed = set(plan.placement)
    refused = {r.service for r in plan.refused}
    ours = {s.key for s in spec.services if s.spec.load_balancer_class == "vipcast.io/haproxy"}
    # every Service of the class is placed or refused, never both, and nothing else appears
    assert placed | refused == ours and not placed & refused
    for lb in plan.load_balancers:
        keys = [(x.protocol, x.port) for x in lb.listeners]
        assert len(keys) == len(set(keys)), "one listener per protocol/port on a load balancer"
        assert set(lb.services) == {x.service for x in lb.listeners}
        for listener in lb.listeners:
            svc = spec.service(listener.service)
            assert svc is not None
            port = next(p for p in svc.spec.ports if p.port == listener.port)
            want = reference_members(spec, svc.key, port.port, port.node_port, members)
            assert {(m.address, m.port) for m in listener.members} == want
    for r in plan.refused:
        svc = spec.service(r.service)
        assert svc is not None
        if any(p.protocol == "UDP" for p in svc.spec.ports):
            assert r.why in ("ProtocolUnsupported", "NoNodePort", "SharedPortClash")
    # order of the input documents does not matter
    shuffled = docs[:1] + random.Random(seed).sample(docs[1:], len(docs) - 1)
    again = spec_of(*shuffled)
    assert desired_external(again, again.providers[0], CAPS) == plan
