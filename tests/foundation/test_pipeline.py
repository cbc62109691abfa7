"""The node pipeline's pure planner: a snapshot, completed by what the node observes."""

from __future__ import annotations

import random
from typing import Any

from vipcast.core.allocation import allocate_spec
from vipcast.core.pipeline import Local, NodeIdentity, healthy_services, plan, snapshot
from vipcast.core.plan import plan_node
from vipcast.spec import Spec, load_documents

V = "vipcast.io/v1beta1"


def _spec() -> Spec:
    docs: list[dict[str, Any]] = [
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "p"},
         "spec": {"addresses": ["192.0.2.0/28"]}},
        {"apiVersion": V, "kind": "BFDProfile", "metadata": {"name": "fast"}, "spec": {}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "r"},
         "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1",
                  "bfdProfile": "fast"}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "b"}, "spec": {}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}},
    ]
    for i, name in enumerate(("a", "b")):
        meta: dict[str, Any] = {"name": name, "namespace": "d"}
        if name == "b":
            meta["annotations"] = {"vipcast.io/health-check": "http:/hz,rise=1"}
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                     "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
        docs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": f"{name}-1", "namespace": "d",
                                  "labels": {"kubernetes.io/service-name": name}},
                     "addressType": "IPv4", "ports": [{"port": 8080}],
                     "endpoints": [{"addresses": [f"198.51.100.{i + 1}"], "nodeName": "n2"}]})
    return load_documents([("t.yaml", d) for d in docs])


def _snap() -> Any:
    spec = _spec()
    duties = plan_node(spec, allocate_spec(spec).current(), "n1")
    return snapshot(spec, duties, NodeIdentity("n1"))


def test_the_snapshot_carries_sessions_and_health_targets() -> None:
    snap = _snap()
    base = snap.plan_base
    assert [p.name for p in base.peers] == ["r"]
    assert [b.name for b in base.bfd] == ["r"]
    assert [(t.ip, t.services) for t in base.health] == [
        ("198.51.100.1", ("d/a",)), ("198.51.100.2", ("d/b",))]
    assert base.health[1].config.kind == "http" and base.health[1].config.rise == 1
    assert base.health[0].config.kind == "tcp"


def test_plan_keeps_only_servable_routes_and_reuses_the_rest() -> None:
    snap = _snap()
    everything = plan(snap, Local())
    assert everything is snap.plan_base  # not gated, nothing down: the snapshot's plan
    only_a = plan(snap, Local(servable=frozenset({"d/a"})))
    assert [r.services for r in only_a.bgp] == [("d/a",)]
    assert only_a.bgp[0] is snap.plan_base.bgp[0]  # unchanged routes are the same objects
    assert only_a.nat == snap.plan_base.nat and only_a.peers == snap.plan_base.peers
    assert plan(snap, Local(servable=frozenset())).bgp == ()


def test_backends_down_or_on_dead_nodes_are_down_in_the_plan() -> None:
    snap = _snap()
    down = plan(snap, Local(down=frozenset({("198.51.100.1", 8080)})))
    assert down.down == {("198.51.100.1", 8080)}
    assert healthy_services(down.nat, down.down) == {"d/b"}
    # every backend of both services is on n2: dropping them would leave the services with
    # nothing, so a dead n2 leaves them in (if only n2's agent died, they still serve)
    dead = plan(snap, Local(dead_nodes=frozenset({"n2"})))
    assert dead.down == frozenset()


def _three_nodes() -> Any:
    docs: list[dict[str, Any]] = [
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "p"},
         "spec": {"addresses": ["192.0.2.0/28"]}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "r"},
         "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1"}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "b"}, "spec": {}},
    ]
    for i in (1, 2, 3):
        docs.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"},
                     "status": {"addresses": [{"type": "InternalIP",
                                               "address": f"198.18.0.{10 + i}"}]}})
    for name, policy, nodes in (("web", "Cluster", (1, 2, 3)), ("local", "Local", (1, 2)),
                                ("only3", "Cluster", (3,))):
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": "d"},
                     "spec": {"type": "LoadBalancer", "ports": [{"port": 80}],
                              "externalTrafficPolicy": policy}})
        docs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": f"{name}-1", "namespace": "d",
                                  "labels": {"kubernetes.io/service-name": name}},
                     "addressType": "IPv4", "ports": [{"port": 8080}],
                     "endpoints": [{"addresses": [f"10.244.{n}.{len(name)}"], "nodeName": f"n{n}"}
                                   for n in nodes]})
    spec = load_documents([("t.yaml", d) for d in docs])
    duties = plan_node(spec, allocate_spec(spec).current(), "n1")
    return snapshot(spec, duties, NodeIdentity("n1"))


def test_a_dead_node_leaves_the_cluster_policy_maps_unless_it_would_empty_a_rule() -> None:
    snap = _three_nodes()
    web3, only3 = ("10.244.3.3", 8080), ("10.244.3.5", 8080)
    dead = plan(snap, Local(dead_nodes=frozenset({"n3"})))
    assert dead.down == {web3}  # only3 keeps its one backend; Local rules never go there
    assert dead.nat is snap.plan_base.nat  # the rules stay; the data plane leaves out ``down``
    # n2's web backend failing its check too: web still has n1's, n3's still goes
    both = plan(snap, Local(dead_nodes=frozenset({"n3"}), down=frozenset({("10.244.2.3", 8080)})))
    assert both.down == {web3, ("10.244.2.3", 8080)}
    # every other web backend failing: the dead node's one is all web has left, it stays
    alone = plan(snap, Local(dead_nodes=frozenset({"n3"}),
                             down=frozenset({("10.244.1.3", 8080), ("10.244.2.3", 8080)})))
    assert web3 not in alone.down and only3 not in alone.down
    # the memo of one set of dead nodes gives what a fresh snapshot gives
    assert plan(_three_nodes(), Local(dead_nodes=frozenset({"n3"}))).down == dead.down
    assert plan(snap, Local(dead_nodes=frozenset({"n2", "n3"}))).down == {
        web3, ("10.244.2.3", 8080)}
    assert plan(snap, Local()).down == frozenset()


def test_liveness_members_are_every_node_of_a_bgp_config() -> None:
    snap = _three_nodes()
    members = snap.plan_base.liveness_members
    assert [(m.name, m.address) for m in members] == [
        ("n1", "198.18.0.11"), ("n2", "198.18.0.12"), ("n3", "198.18.0.13")]
    assert snap.plan_base.l2_members == ()


def _forty_services(rng: random.Random) -> tuple[Spec, Any, Any, list[str]]:
    """Forty Services from test_incremental's generator (drawn from ``rng``), planned for n1:
    (spec, n1's duties, its snapshot, the Services with NAT rules, sorted)."""
    from test_incremental import BASE, service

    docs = list(BASE)
    for i in range(40):
        docs += service(f"s{i}", rng, 0.0)
    spec = load_documents([("t.yaml", d) for d in docs])
    duties = plan_node(spec, allocate_spec(spec).current(), "n1")
    snap = snapshot(spec, duties, NodeIdentity("n1"))
    return spec, duties, snap, sorted({r.service for r in duties.nat})


def test_the_filter_memo_gives_what_a_fresh_filter_gives() -> None:
    """plan() remembers its last servable filter per snapshot; any sequence of servable sets
    gives the plans a snapshot without that memory gives."""
    rng = random.Random(5)
    spec, duties, snap, services = _forty_services(rng)
    assert services
    servable = set(services)
    for _ in range(60):
        for s in rng.sample(services, rng.randrange(0, 4)):
            servable ^= {s}
        local = Local(servable=frozenset(servable))
        fresh = snapshot(spec, duties, NodeIdentity("n1"))
        assert plan(snap, local) == plan(fresh, local)


def test_the_route_delta_takes_the_previous_routes_to_the_new_ones() -> None:
    """A plan made by the filter's incremental path says how its routes differ from the
    previous plan's: the previous tuple, minus ``removed``, plus ``added``, is the new one
    (by identity); a plan that looked at everything carries no delta."""
    rng = random.Random(11)
    _spec, _duties, snap, services = _forty_services(rng)
    servable = set(services)
    previous = plan(snap, Local(servable=frozenset(servable)))
    assert previous.bgp_delta is None  # the first filter looks at everything
    deltas = 0
    for _ in range(60):
        for s in rng.sample(services, rng.randrange(1, 3)):
            servable ^= {s}
        current = plan(snap, Local(servable=frozenset(servable)))
        delta = current.bgp_delta
        if delta is not None:
            deltas += 1
            assert delta.base is previous.bgp and delta.result is current.bgp
            gone = {id(r) for r in delta.removed}
            kept = [r for r in previous.bgp if id(r) not in gone]
            assert {id(r) for r in kept} | {id(r) for r in delta.added} == {
                id(r) for r in current.bgp}
            assert not gone & {id(r) for r in current.bgp}
        previous = current
    assert deltas > 30
