"""The drain state machine (table, deadlines) and what each phase does to the plan."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tests.foundation.test_plan import bgp_adv, load, node, peer, pool, service, slice_

from vipcast.core.allocation import allocate_spec
from vipcast.core.desired import BGPRoute, NodePlan
from vipcast.core.drain import (
    PHASE_OF,
    TRANSITIONS,
    DrainEvent,
    DrainState,
    Phase,
    apply_drain,
    deadline_of,
    drain_issues_for,
    step,
    wants_drain,
)
from vipcast.core.plan import plan_node
from vipcast.proto.bgp.ext_communities import GRACEFUL_SHUTDOWN

S, E = DrainState, DrainEvent


def test_the_drain_sequence() -> None:
    state = S.SERVING
    seen = [state]
    for event in (E.DRAIN, E.GRACE_EXPIRED, E.UNDRAIN, E.HEALTH_VERIFIED):
        state = step(state, event)
        seen.append(state)
    assert seen == [S.SERVING, S.DRAINING, S.DRAINED, S.UNDRAINING, S.SERVING]
    assert [PHASE_OF[s] for s in seen] == [
        Phase.ANNOUNCE, Phase.GRACEFUL_SHUTDOWN, Phase.WITHDRAWN, Phase.WITHDRAWN, Phase.ANNOUNCE
    ]
    # routers moved away before the grace ended: withdrawn at once
    assert step(S.DRAINING, E.ROUTERS_MOVED) is S.DRAINED
    # undrain while still announcing with 65535:0: straight back, nothing was withdrawn
    assert step(S.DRAINING, E.UNDRAIN) is S.SERVING
    # undrain never re-announces before health is verified
    assert PHASE_OF[step(S.DRAINED, E.UNDRAIN)] is Phase.WITHDRAWN


@given(st.sampled_from(list(S)), st.sampled_from(list(E)))
def test_the_table_is_total_and_never_skips_graceful_shutdown(s: DrainState, e: DrainEvent
                                                               ) -> None:
    after = step(s, e)
    assert after == TRANSITIONS.get((s, e), s)
    # from announcing, the only way out is through GRACEFUL_SHUTDOWN: never a bare withdrawal
    if PHASE_OF[s] is Phase.ANNOUNCE:
        assert PHASE_OF[after] in (Phase.ANNOUNCE, Phase.GRACEFUL_SHUTDOWN)
    # re-announcing after a withdrawal takes the health check
    if PHASE_OF[s] is Phase.WITHDRAWN and PHASE_OF[after] is Phase.ANNOUNCE:
        assert e is E.HEALTH_VERIFIED


def test_only_draining_has_a_deadline() -> None:
    assert deadline_of(S.DRAINING, 100.0, 30.0) == 130.0
    assert all(deadline_of(s, 100.0, 30.0) is None for s in S if s is not S.DRAINING)


def test_phases_on_the_plan() -> None:
    route = BGPRoute("192.0.2.1/32", ("r",), communities=(65000 << 16 | 100,))
    plan = NodePlan(node="n1", bgp=(route,))
    assert apply_drain(plan, Phase.ANNOUNCE) is plan
    gshut = apply_drain(plan, Phase.GRACEFUL_SHUTDOWN)
    [r] = gshut.bgp
    assert r.prefix == route.prefix and r.peers == route.peers
    assert r.communities == (65000 << 16 | 100, GRACEFUL_SHUTDOWN)
    assert r.local_pref == 0
    assert apply_drain(gshut, Phase.GRACEFUL_SHUTDOWN).bgp[0].communities.count(
        GRACEFUL_SHUTDOWN) == 1
    assert apply_drain(plan, Phase.WITHDRAWN).bgp == ()


def test_a_draining_node_serves_no_l2_vip() -> None:
    """L2 drain: the node's serving set empties as the drain starts, so the members elect the
    next owner, whose announcement ends this node's release (docs/l2.md); back on ANNOUNCE."""
    plan = NodePlan(node="n1", l2_servable=frozenset({"demo/web"}))
    assert apply_drain(plan, Phase.ANNOUNCE).l2_servable == frozenset({"demo/web"})
    assert apply_drain(plan, Phase.GRACEFUL_SHUTDOWN).l2_servable == frozenset()
    assert apply_drain(plan, Phase.WITHDRAWN).l2_servable == frozenset()


def test_drain_triggers_on_the_node_object() -> None:
    spec = load(pool("p", "192.0.2.0/28"), peer("r"), bgp_adv("a"),
                node("plain"), node("labelled", **{
                    "node.kubernetes.io/exclude-from-external-load-balancers": ""}),
                node("off", **{"vipcast.io/drain": "false"}),
                service("web"), slice_("web", ("10.0.0.1", "plain", True)))
    nodes = {n.metadata.name: n for n in spec.nodes}
    assert not wants_drain(nodes["plain"])
    assert wants_drain(nodes["labelled"])
    assert not wants_drain(nodes["off"])
    assert not wants_drain(nodes["labelled"], labels=("example.com/drain",))
    assert not wants_drain(None)
    assert drain_issues_for(nodes, "plain") is None
    reason = drain_issues_for(nodes, "ghost")
    assert reason is not None and "no Node 'ghost'" in reason and "plain" in reason
    # the plan itself is untouched by the label: the drain acts through the phases
    duties = plan_node(spec, allocate_spec(spec).current(), "plain")
    assert duties.bgp


def test_drain_taints_by_key() -> None:
    from vipcast.spec import Node

    def tainted(*keys: str) -> Node:
        return Node.model_validate({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": k, "value": "x", "effect": "NoSchedule"} for k in keys]}})

    assert wants_drain(tainted("ToBeDeletedByClusterAutoscaler"))
    assert wants_drain(tainted("vipcast.io/drain"))
    # cordon is not shutdown: the unschedulable taint does not drain
    assert not wants_drain(tainted("node.kubernetes.io/unschedulable"))
    assert not wants_drain(tainted())
    assert wants_drain(tainted("example.com/retire"), taints=("example.com/retire",))
    assert not wants_drain(tainted("vipcast.io/drain"), taints=())


def test_routers_moved_after_a_quiet_period_of_the_counter() -> None:
    from vipcast.core.drain import routers_moved

    assert not routers_moved([], 3.0)
    assert not routers_moved([(0.0, 5), (1.0, 9), (2.0, 9)], 3.0)  # not quiet long enough
    assert not routers_moved([(0.0, 5), (1.0, 9), (4.0, 12)], 3.0)  # still rising
    assert not routers_moved([(0.0, 5), (1.0, 9), (3.5, 9), (4.0, 10)], 3.0)  # moved again
    assert routers_moved([(0.0, 5), (1.0, 9), (2.0, 9), (4.0, 9)], 3.0)
    assert routers_moved([(0.0, 0), (3.0, 0)], 3.0)  # nothing came at all
    assert not routers_moved([(0.0, 0), (3.0, 0)], 0.0)  # 0: no early end


def test_an_unreadable_drain_annotation_is_a_warning_and_drains_nothing() -> None:
    from vipcast.core.notices import notices

    doc = node("n1")
    doc["metadata"]["annotations"] = {"vipcast.io/drain": "yes please"}
    spec = load(pool("p", "192.0.2.0/28"), peer("r"), bgp_adv("a"), doc, node("n2"),
                service("web"), slice_("web", ("10.0.0.1", "n1", True)))
    [issue] = [i for i in notices(spec) if i.kind == "Node"]
    assert issue.name == "n1" and issue.field == "metadata.annotations[vipcast.io/drain]"
    assert "neither" in issue.message
    assert not wants_drain(next(n for n in spec.nodes if n.metadata.name == "n1"))
    # the route stays planned
    assert plan_node(spec, allocate_spec(spec).current(), "n1").bgp
