"""UPDATE packing: shared attributes, message-size limits, decodable output."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipcast.proto.bgp.adj_rib_out import head_start
from vipcast.proto.bgp.attributes import MpReach, MpUnreach, WireContext
from vipcast.proto.bgp.constants import IPV4_UNICAST, IPV6_UNICAST
from vipcast.proto.bgp.messages import decode_message
from vipcast.proto.bgp.packing import (
    Outbound,
    RouteAttributes,
    end_of_rib,
    pack_announcements,
    pack_withdrawals,
)
from vipcast.proto.bgp.prefixes import encode_prefix
from vipcast.proto.bgp.update import Update
from vipcast.proto.bgp.wire import Framer


def outbound(max_len: int = 4096, **kw: object) -> Outbound:
    base: dict[str, object] = {
        "local_asn": 65001,
        "ibgp": False,
        "four_octet_as": True,
        "max_message_len": max_len,
        "next_hop_v4": ipaddress.IPv4Address("192.0.2.1").packed,
        "next_hop_v6": ipaddress.IPv6Address("2001:db8::1").packed,
    }
    base.update(kw)
    return Outbound(**base)  # type: ignore[arg-type]


def decode_all(messages: list[bytes], max_len: int) -> list[Update]:
    out = []
    for raw in messages:
        assert len(raw) <= max_len
        framer = Framer(max_len)
        framer.feed(raw)
        item = framer.next_message()
        assert item is not None and framer.buffered == 0
        msg = decode_message(item[0], item[1], WireContext())
        assert isinstance(msg, Update) and not msg.treat_as_withdraw
        out.append(msg)
    return out


def v4(n: int) -> list[str]:
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    return [f"{ipaddress.IPv4Address(base + i)}/32" for i in range(n)]


def v6(n: int) -> list[str]:
    base = int(ipaddress.IPv6Address("2001:db8::"))
    return [f"{ipaddress.IPv6Address(base + i)}/128" for i in range(n)]


@pytest.mark.parametrize(("max_len", "most"), [(4096, 13), (65535, 1)])
def test_ten_thousand_ipv4_routes_fit_a_handful(max_len: int, most: int) -> None:
    prefixes = v4(10_000)
    msgs = pack_announcements(
        IPV4_UNICAST,
        RouteAttributes(communities=(1, 2)),
        [encode_prefix(p)[1] for p in prefixes],
        outbound(max_len),
    )
    assert len(msgs) <= most
    updates = decode_all(msgs, max_len)
    assert [p for u in updates for p in u.nlri] == prefixes


def test_ipv6_announcements_and_withdrawals() -> None:
    prefixes = v6(3000)
    nlri = [encode_prefix(p)[1] for p in prefixes]
    ann = decode_all(pack_announcements(IPV6_UNICAST, RouteAttributes(), nlri, outbound()), 4096)
    got = [p for u in ann for a in u.attributes if isinstance(a, MpReach) for p in a.nlri]
    assert got == prefixes
    wd = decode_all(pack_withdrawals(IPV6_UNICAST, nlri, outbound()), 4096)
    got = [p for u in wd for a in u.attributes if isinstance(a, MpUnreach) for p in a.withdrawn]
    assert got == prefixes and len(wd) <= 20


def test_ipv4_withdrawals() -> None:
    prefixes = v4(5000)
    msgs = pack_withdrawals(IPV4_UNICAST, [encode_prefix(p)[1] for p in prefixes], outbound())
    assert len(msgs) <= 7
    assert [p for u in decode_all(msgs, 4096) for p in u.withdrawn] == prefixes


def test_link_local_next_hop_is_32_bytes() -> None:
    hop = ipaddress.IPv6Address("2001:db8::1").packed + ipaddress.IPv6Address("fe80::1").packed
    msgs = pack_announcements(
        IPV6_UNICAST,
        RouteAttributes(),
        [encode_prefix("2001:db8::/64")[1]],
        outbound(next_hop_v6=hop),
    )
    (update,) = decode_all(msgs, 4096)
    mp = next(a for a in update.attributes if isinstance(a, MpReach))
    assert mp.next_hops == ("2001:db8::1", "fe80::1")


def test_no_next_hop_means_nothing_sent() -> None:
    nlri = [encode_prefix("192.0.2.1/32")[1]]
    assert (
        pack_announcements(IPV4_UNICAST, RouteAttributes(), nlri, outbound(next_hop_v4=None)) == []
    )


def test_end_of_rib_markers_decode() -> None:
    assert decode_all([end_of_rib(IPV4_UNICAST)], 4096) == [Update()]
    assert decode_all([end_of_rib(IPV6_UNICAST)], 4096) == [
        Update(attributes=(MpUnreach(IPV6_UNICAST, ()),))
    ]


def test_preferred_update_size_below_the_negotiated_maximum() -> None:
    """With RFC 8654 negotiated, UPDATEs are still built at the preferred size (4,096);
    only attributes that leave no room for a prefix there use the 65,535 maximum."""
    nlri = [encode_prefix(f"198.18.{i >> 8}.{i & 255}/32")[1] for i in range(10_000)]
    attrs = RouteAttributes()
    big = pack_announcements(IPV4_UNICAST, attrs, nlri, outbound(65535))
    small = pack_announcements(IPV4_UNICAST, attrs, nlri, outbound(65535, update_len=4096))
    assert len(big) == 1 and len(small) == 13
    assert all(len(m) <= 4096 for m in small)
    decoded = decode_all(small, 4096)
    assert sum(len(u.nlri) for u in decoded) == 10_000
    withdrawals = pack_withdrawals(IPV4_UNICAST, nlri, outbound(65535, update_len=4096))
    assert all(len(m) <= 4096 for m in withdrawals)
    # 1,100 communities (4,400 bytes) do not fit in 4,096: the negotiated maximum is used
    crowded = RouteAttributes(communities=tuple(range(1, 1101)))
    wide = pack_announcements(IPV4_UNICAST, crowded, nlri[:10], outbound(65535, update_len=4096))
    assert len(wide) == 1 and 4096 < len(wide[0]) <= 65535


@given(
    previous=st.sets(st.integers(0, 300), max_size=60),
    routes=st.sets(st.integers(0, 300), max_size=200),
    limit=st.integers(1, 50),
)
def test_head_start_is_what_stays_plus_the_first_new_ones(
    previous: set[int], routes: set[int], limit: int
) -> None:
    def table(keys: set[int], med: int) -> dict[str, RouteAttributes]:
        return {f"198.18.{k >> 8}.{k & 255}/32": RouteAttributes(med=med) for k in sorted(keys)}

    before, after = table(previous, 1), table(routes, 2)
    head = head_start(before, after, limit)
    if len(after) - len(before) <= limit:
        assert head is None
        return
    assert head is not None
    new = [p for p in after if p not in before]
    assert list(head) == [p for p in after if p in before or p in new[:limit]]
    assert all(head[p] == after[p] for p in head)  # new attributes, order of ``routes``
