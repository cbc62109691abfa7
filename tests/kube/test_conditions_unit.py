"""Service conditions and node reports, pure: allocator outcomes and speakers' reports in,
condition dicts out."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from vipcast.alloc import Assignment, Reason
from vipcast.core.desired import BGPRoute, L2Ownership, NodePlan
from vipcast.sources.kube.announcements import (
    REASON_NOT_SELECTED,
    REASON_NOT_VERIFIED,
    fold_reports,
    node_report,
    report_body,
)
from vipcast.sources.kube.conditions import (
    ALLOCATED,
    ANNOUNCED,
    allocated_condition,
    announced_condition,
    conditions_up_to_date,
    merged,
)


def test_allocated_condition_carries_the_allocators_reason() -> None:
    ok = allocated_condition(Assignment("ns/a", ("192.0.2.1",), "p", Reason.ASSIGNED, ""))
    assert ok["type"] == ALLOCATED and ok["status"] == "True" and ok["reason"] == "Allocated"
    assert "192.0.2.1" in ok["message"] and "p" in ok["message"]
    taken = allocated_condition(Assignment(
        "ns/b", (), None, Reason.REQUESTED_TAKEN, "192.0.2.1 is taken by ns/a"))
    assert taken["status"] == "False" and taken["reason"] == "RequestedIPTaken"
    assert taken["message"] == "192.0.2.1 is taken by ns/a"


def test_allocated_condition_is_the_same_when_assigned_and_when_kept() -> None:
    # a later round (or a new leader rebuilding from status) must not rewrite the status
    assigned = Assignment("ns/a", ("192.0.2.1",), "p", Reason.ASSIGNED, "from pool p")
    kept = Assignment("ns/a", ("192.0.2.1",), "p", Reason.KEPT, "unchanged")
    assert allocated_condition(assigned) == allocated_condition(kept)
    assert allocated_condition(kept)["message"] == "192.0.2.1 from pool p"


def _plan(node: str, bgp: dict[str, str] | None = None, l2: dict[str, str] | None = None,
          owner: str | None = None) -> NodePlan:
    return NodePlan(
        node=node,
        bgp=tuple(BGPRoute(prefix=f"{ip}/32", peers=("r",), services=(svc,))
                  for svc, ip in (bgp or {}).items()),
        l2=tuple(L2Ownership(ip=ip, interfaces=("eth0",), owner=owner or node,
                             candidates=(node,), services=(svc,))
                 for svc, ip in (l2 or {}).items()))


def test_node_report_lists_announced_and_withheld_with_reasons() -> None:
    committed = {"ns/a": ("192.0.2.1",), "ns/b": ("192.0.2.2",), "ns/c": ("192.0.2.3",),
                 "ns/d": ("192.0.2.4",)}
    final = _plan("n1", bgp={"ns/a": "192.0.2.1"}, l2={"ns/d": "192.0.2.4"})
    selected = _plan("n1", bgp={"ns/a": "192.0.2.1", "ns/b": "192.0.2.2"})
    report = node_report(final, committed, selected)
    assert [(a.service, a.modes) for a in report.announced] == [("ns/a", ("BGP",)),
                                                                ("ns/d", ("L2",))]
    assert {w.service: w.reason for w in report.withheld} == {
        "ns/b": REASON_NOT_VERIFIED, "ns/c": REASON_NOT_SELECTED}
    # an L2 address owned by another node is not announced here
    other = node_report(_plan("n1", l2={"ns/d": "192.0.2.4"}, owner="n2"),
                        {"ns/d": ("192.0.2.4",)})
    assert not other.announced and other.withheld[0].service == "ns/d"


def test_fold_and_announced_condition() -> None:
    committed = {"ns/a": ("192.0.2.1",), "ns/b": ("192.0.2.2",)}
    r1 = report_body("n1", node_report(_plan("n1", bgp={"ns/a": "192.0.2.1"}), committed))
    r2 = report_body("n2", node_report(_plan("n2"), committed))
    broken = {"metadata": {"name": "x"}, "spec": {"nodeName": "x"},
              "status": {"announced": [{"service": 5}]}}
    nodes, seen = fold_reports([r1, r2, broken])
    assert nodes == 2
    a = announced_condition(("192.0.2.1",), nodes, seen.get("ns/a"))
    assert a["type"] == ANNOUNCED and a["status"] == "True" and "n1" in a["message"]
    assert "BGP" in a["message"]
    b = announced_condition(("192.0.2.2",), nodes, seen.get("ns/b"))
    assert b["status"] == "False" and b["reason"] == "NotAnnounced"
    assert "n1: NotSelected" in b["message"] and "n2: NotSelected" in b["message"]
    assert announced_condition((), nodes, None)["reason"] == "NotAllocated"
    assert announced_condition(("192.0.2.9",), 0, None)["reason"] == "NoSpeakerReport"


def test_transition_time_moves_only_on_a_flip() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = datetime(2026, 1, 2, tzinfo=UTC)
    first = merged([], [{"type": ALLOCATED, "status": "False", "reason": "PoolExhausted",
                         "message": "m"}], 3, t0)
    assert first[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    same = merged(first, [{"type": ALLOCATED, "status": "False", "reason": "NoEligiblePool",
                           "message": "n"}], 3, t1)
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    flipped = merged(same, [{"type": ALLOCATED, "status": "True", "reason": "Assigned",
                             "message": "o"}], 4, t1)
    assert flipped[0]["lastTransitionTime"] == "2026-01-02T00:00:00Z"
    assert flipped[0]["observedGeneration"] == 4
    assert conditions_up_to_date(flipped, [{k: flipped[0][k] for k in (
        "type", "status", "reason", "message")}], 4)
    assert not conditions_up_to_date(flipped, [{**flipped[0], "message": "x"}], 4)


@given(st.lists(st.dictionaries(st.sampled_from(["spec", "status", "metadata"]),
                                st.recursive(st.none() | st.integers() | st.text(max_size=5),
                                             lambda c: st.lists(c, max_size=3)
                                             | st.dictionaries(st.text(max_size=8), c,
                                                               max_size=3),
                                             max_leaves=8)), max_size=4))
def test_fold_never_raises_on_garbage(objs: list[dict[str, object]]) -> None:
    def as_obj(d: dict[str, object]) -> dict[str, object]:
        return {k: (v if isinstance(v, dict) else {}) for k, v in d.items()}

    nodes, _ = fold_reports([as_obj(o) for o in objs])
    assert nodes <= len(objs)


def test_reports_of_gone_or_not_ready_nodes_are_left_out() -> None:
    """After an L2 failover the dead node's last report still says it answers: the fold
    counts only Nodes that exist and are Ready, so the condition names the new owner."""
    committed = {"ns/a": ("192.0.2.1",)}
    dead = report_body("n1", node_report(_plan("n1", l2={"ns/a": "192.0.2.1"}, owner="n1"),
                                         committed))
    new = report_body("n2", node_report(_plan("n2", l2={"ns/a": "192.0.2.1"}, owner="n2"),
                                        committed))
    gone = report_body("n3", node_report(_plan("n3", bgp={"ns/a": "192.0.2.1"}), committed))
    nodes, seen = fold_reports([dead, new, gone])
    assert nodes == 3  # without readiness every report counts
    nodes, seen = fold_reports([dead, new, gone], ready_nodes={"n2"})
    assert nodes == 1
    cond = announced_condition(("192.0.2.1",), nodes, seen.get("ns/a"))
    assert cond["status"] == "True" and "n2" in cond["message"]
    assert "n1" not in cond["message"] and "n3" not in cond["message"]
    # no live node reports: nobody announces it, whatever the stale reports said
    nodes, seen = fold_reports([dead, gone], ready_nodes={"n2"})
    assert nodes == 0
    assert announced_condition(("192.0.2.1",), nodes, seen.get("ns/a"))["reason"] == \
        "NoSpeakerReport"
