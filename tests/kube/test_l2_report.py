"""A speaker's NodeAnnouncement in L2 mode follows who answers ARP/NDP at run time (the L2
runtime's owner from membership and servability), not the planner's static owner."""

from __future__ import annotations

import asyncio

from vipcast.core.desired import L2Ownership, NodePlan
from vipcast.sources.kube.announcements import (
    REASON_L2_STANDBY,
    REASON_NOT_SELECTED,
    node_report,
)
from vipcast.sources.kube.reporter import AnnouncementReporter

VIP = "192.0.2.80"
COMMITTED = {"ns/web": (VIP,)}


def _plan(node: str, candidates: tuple[str, ...] = ("n1", "n2", "n3")) -> NodePlan:
    return NodePlan(node=node, l2=(L2Ownership(ip=VIP, interfaces=("eth0",), owner=candidates[0],
                                               candidates=candidates, services=("ns/web",)),))


def test_without_the_runtime_view_the_static_owner_reports() -> None:
    assert [a.service for a in node_report(_plan("n1"), COMMITTED).announced] == ["ns/web"]
    assert not node_report(_plan("n2"), COMMITTED).announced


def test_the_node_answering_reports_it_and_the_static_owner_does_not() -> None:
    # n1 (static owner) is dead or cannot serve: n2 answers
    n2 = node_report(_plan("n2"), COMMITTED, l2_answered=frozenset({VIP}))
    assert [(a.service, a.addresses, a.modes) for a in n2.announced] == [
        ("ns/web", (VIP,), ("L2",))]
    n1 = node_report(_plan("n1"), COMMITTED, l2_answered=frozenset())
    assert not n1.announced
    assert [(w.service, w.reason) for w in n1.withheld] == [("ns/web", REASON_L2_STANDBY)]


def test_a_node_that_is_no_candidate_is_not_selected() -> None:
    report = node_report(_plan("n3", candidates=("n1", "n2")), COMMITTED,
                         l2_answered=frozenset())
    assert [(w.service, w.reason) for w in report.withheld] == [("ns/web", REASON_NOT_SELECTED)]


def test_reporter_reports_again_when_the_answered_set_changes() -> None:
    async def scenario() -> None:
        reporter = AnnouncementReporter(client=None, node="n2")  # type: ignore[arg-type]
        reporter.set_l2_answered(frozenset())  # before any plan: nothing to report
        assert reporter.wanted is None
        reporter.offer(_plan("n2"), COMMITTED)
        assert reporter.wanted is not None and not reporter.wanted.announced
        reporter.set_l2_answered(frozenset({VIP}))
        assert [a.service for a in reporter.wanted.announced] == ["ns/web"]
        reporter.offer(_plan("n2"), COMMITTED)  # a re-plan keeps the runtime view
        assert [a.service for a in reporter.wanted.announced] == ["ns/web"]
        reporter.set_l2_answered(None)
        assert not reporter.wanted.announced

    asyncio.run(scenario())
