"""Route changes handed on as differences give exactly what a whole-table replace gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_proto_packing import decode_all, outbound

from vipcast.core.desired import BGPRoute
from vipcast.proto.bgp.adj_rib_out import AdjRibOut
from vipcast.proto.bgp.constants import IPV4_UNICAST, IPV6_UNICAST
from vipcast.proto.bgp.packing import RouteAttributes
from vipcast.runtime.bgp.speaker import route_changes, routes_by_peer

PREFIXES = [f"198.18.0.{i}/32" for i in range(12)] + [f"2001:db8::{i:x}/128" for i in range(4)]
ATTRS = [RouteAttributes(), RouteAttributes(local_pref=200), RouteAttributes(communities=(7,))]
FAMILIES = frozenset({IPV4_UNICAST, IPV6_UNICAST})

tables = st.dictionaries(st.sampled_from(PREFIXES), st.sampled_from(ATTRS), max_size=16)


def announced(rib: AdjRibOut, messages: list[bytes]) -> dict[str, RouteAttributes]:
    assert all(decode_all(messages, 4096))  # the UPDATEs decode
    return dict(rib.sent)


@settings(max_examples=200, deadline=None)
@given(st.lists(tables, min_size=1, max_size=6))
def test_update_desired_ends_where_set_desired_does(steps: list[dict[str, RouteAttributes]]
                                                    ) -> None:
    whole, parts = AdjRibOut(), AdjRibOut()
    out = outbound()
    previous: dict[str, RouteAttributes] = {}
    for table in steps:
        whole.set_desired(table)
        changes: dict[str, RouteAttributes | None] = {p: None for p in previous if p not in table}
        changes.update({p: a for p, a in table.items() if previous.get(p) != a})
        parts.update_desired(changes)
        sent_whole = announced(whole, whole.sync(out, FAMILIES))
        sent_parts = announced(parts, parts.sync(out, FAMILIES))
        assert sent_parts == sent_whole == table
        assert parts.desired == whole.desired
        previous = table


routes = st.lists(
    st.builds(BGPRoute, st.sampled_from(PREFIXES[:6]),
              st.sampled_from([("a",), ("b",), ("a", "b")]),
              local_pref=st.sampled_from([None, 100])),
    max_size=8, unique_by=lambda r: r.prefix,  # one route per prefix, as the planner makes
)


@settings(max_examples=200, deadline=None)
@given(routes, routes, st.data())
def test_route_changes_are_the_difference_of_the_tables(
    old: list[BGPRoute], fresh: list[BGPRoute], data: st.DataObject
) -> None:
    # the new plan keeps some of the old route objects as they are, like the planner
    kept = data.draw(st.lists(st.sampled_from(old), unique=True)) if old else []
    new = [r for r in fresh if r.prefix not in {k.prefix for k in kept}] + kept
    before, after = routes_by_peer(old), routes_by_peer(new)
    changes = route_changes(tuple(old), tuple(new))
    for peer in set(before) | set(after):
        table = dict(before.get(peer, {}))
        for prefix, attrs in changes.get(peer, {}).items():
            if attrs is None:
                table.pop(prefix, None)
            else:
                table[prefix] = attrs
        assert table == after.get(peer, {})


def test_the_speaker_diffs_a_plan_against_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first plan, a plan that keeps most routes as the same objects is applied as a
    difference (the whole table is not rebuilt), and the tables end up as a rebuild's."""
    import asyncio

    from vipcast.core.desired import NodePlan
    from vipcast.runtime.bgp import speaker as bgp_speaker

    whole = []
    real = bgp_speaker.routes_by_peer
    monkeypatch.setattr(bgp_speaker, "routes_by_peer",
                        lambda routes: whole.append(1) or real(routes))
    first = tuple(BGPRoute(p, ("a",)) for p in PREFIXES[:8])
    second = (*first[:5], BGPRoute(PREFIXES[9], ("a", "b")))

    async def scenario() -> None:
        speaker = bgp_speaker.Speaker()
        await speaker.apply(NodePlan(node="n", bgp=first))
        await speaker.apply(NodePlan(node="n", bgp=second))
        await speaker.apply(NodePlan(node="n", bgp=second[1:]))
        assert len(whole) == 1
        assert speaker._routes == {p: dict(t) for p, t in real(second[1:]).items()}

    asyncio.run(scenario())


def test_the_speaker_uses_the_planners_delta_only_when_it_fits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan's ``bgp_delta`` from the routes the speaker applied is used as is (no diff of
    the whole table); one from other routes, or for another tuple, is ignored (diffed)."""
    import asyncio

    from vipcast.core.desired import NodePlan, RouteDelta
    from vipcast.runtime.bgp import speaker as bgp_speaker

    diffs = []
    real = bgp_speaker.route_changes
    monkeypatch.setattr(bgp_speaker, "route_changes",
                        lambda old, new: diffs.append(1) or real(old, new))
    first = tuple(BGPRoute(p, ("a",)) for p in PREFIXES[:8])
    moved = BGPRoute(PREFIXES[2], ("a", "b"))
    second = (first[0], first[1], moved, *first[4:])
    good = RouteDelta(first, second, (first[2], first[3]), (moved,))
    third = second[1:]
    stale = RouteDelta(first, third, (first[0],), ())  # not from what the speaker applied

    async def scenario() -> None:
        speaker = bgp_speaker.Speaker()
        await speaker.apply(NodePlan(node="n", bgp=first))
        await speaker.apply(NodePlan(node="n", bgp=second, bgp_delta=good))
        assert diffs == []
        assert speaker._routes == {p: dict(t) for p, t in routes_by_peer(second).items()}
        await speaker.apply(NodePlan(node="n", bgp=third, bgp_delta=stale))
        assert diffs == [1]
        assert speaker._routes == {p: dict(t) for p, t in routes_by_peer(third).items()}

    asyncio.run(scenario())
