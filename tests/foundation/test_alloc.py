"""The allocator's rules, one by one."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipcast.alloc import (
    IPRange,
    MatchLabels,
    PoolInput,
    Reason,
    ServiceInput,
    allocate,
)
from vipcast.alloc.pools import ip_text, parse_address


def pool(name: str, *ranges: str, **kw: object) -> PoolInput:
    return PoolInput(name, tuple(IPRange.parse(r) for r in ranges), **kw)  # type: ignore[arg-type]


def svc(name: str, ns: str = "default", **kw: object) -> ServiceInput:
    return ServiceInput(ns, name, **kw)  # type: ignore[arg-type]


def test_assigns_lowest_free_and_is_deterministic() -> None:
    pools = [pool("a", "192.0.2.0/30")]
    r = allocate(pools, [svc("x"), svc("y")], {})
    assert r.assignments["default/x"].ips == ("192.0.2.0",)
    assert r.assignments["default/y"].ips == ("192.0.2.1",)
    assert r.assignments["default/x"].reason is Reason.ASSIGNED
    assert r.assignments["default/x"].pool == "a"
    assert allocate(pools, [svc("y"), svc("x")], {}) == r


def test_keeps_existing_and_never_reshuffles() -> None:
    pools = [pool("a", "192.0.2.0/29")]
    current = {"default/z": ("192.0.2.5",)}
    r = allocate(pools, [svc("a1"), svc("z")], current)
    assert r.assignments["default/z"].ips == ("192.0.2.5",)
    assert r.assignments["default/z"].reason is Reason.KEPT
    assert r.assignments["default/a1"].ips == ("192.0.2.0",)
    # an unrelated pool edit keeps it
    pools2 = [pool("a", "192.0.2.0/28", priority=3), pool("b", "198.51.100.0/24", priority=1)]
    r2 = allocate(pools2, [svc("a1"), svc("z")], r.current())
    assert r2.current() == r.current()


def test_exhausted_is_a_value() -> None:
    r = allocate([pool("a", "192.0.2.1/32")], [svc("x"), svc("y")], {})
    assert r.assignments["default/x"].ok
    y = r.assignments["default/y"]
    assert y.reason is Reason.POOL_EXHAUSTED and y.ips == () and not y.ok
    assert "a" in y.message


def test_avoid_buggy_ips() -> None:
    r = allocate([pool("a", "192.0.2.255-192.0.3.1", avoid_buggy_ips=True)], [svc("x")], {})
    assert r.assignments["default/x"].ips == ("192.0.3.1",)
    # a held .0 becomes invalid when the pool starts avoiding it, and moves with the reason
    r = allocate(
        [pool("a", "192.0.2.0/24", avoid_buggy_ips=True)],
        [svc("x")],
        {"default/x": ("192.0.2.0",)},
    )
    x = r.assignments["default/x"]
    assert x.reason is Reason.MOVED and x.ips == ("192.0.2.1",) and "avoids" in x.message


def test_requested_ip_granted_refused_and_taken() -> None:
    pools = [pool("a", "192.0.2.0/24")]
    r = allocate(
        pools,
        [
            svc("want", requested_ips=("192.0.2.77",)),
            svc("outside", requested_ips=("203.0.113.1",)),
            svc("clash", requested_ips=("192.0.2.9",)),
            svc("holder"),
        ],
        {"default/holder": ("192.0.2.9",)},
    )
    a = r.assignments
    assert a["default/want"].ips == ("192.0.2.77",) and a["default/want"].reason is Reason.REQUESTED
    assert a["default/outside"].reason is Reason.REQUESTED_OUTSIDE
    assert a["default/clash"].reason is Reason.REQUESTED_TAKEN
    assert "default/holder" in a["default/clash"].message
    assert a["default/holder"].ips == ("192.0.2.9",)


def test_request_beats_fresh_allocation_in_same_run() -> None:
    r = allocate(
        [pool("a", "192.0.2.0/31")],
        [svc("a-auto"), svc("b-req", requested_ips=("192.0.2.0",))],
        {},
    )
    assert r.assignments["default/b-req"].ips == ("192.0.2.0",)
    assert r.assignments["default/a-auto"].ips == ("192.0.2.1",)


def test_changed_request_moves_with_reason() -> None:
    r = allocate(
        [pool("a", "192.0.2.0/24")],
        [svc("x", requested_ips=("192.0.2.50",))],
        {"default/x": ("192.0.2.3",)},
    )
    x = r.assignments["default/x"]
    assert x.ips == ("192.0.2.50",) and x.previous == ("192.0.2.3",) and x.moved
    assert x.invalidated == (("192.0.2.3", "not the requested address"),)


def test_invalid_requests() -> None:
    pools = [pool("a", "192.0.2.0/24", "2001:db8::/64")]
    r = allocate(
        pools,
        [
            svc("bad", requested_ips=("nope",)),
            svc("two4", requested_ips=("192.0.2.1", "192.0.2.2")),
            svc("v6-on-v4", requested_ips=("2001:db8::5",)),
            svc(
                "req-dual",
                requested_ips=("192.0.2.7",),
                ip_families=(4, 6),
                ip_family_policy="RequireDualStack",
            ),
        ],
        {},
    )
    for name in ("bad", "two4", "v6-on-v4", "req-dual"):
        assert r.assignments[f"default/{name}"].reason is Reason.REQUEST_INVALID, name


def test_auto_assign_false_only_on_request_and_pool_annotation() -> None:
    pools = [pool("manual", "192.0.2.0/30", auto_assign=False), pool("auto", "198.51.100.0/30")]
    r = allocate(
        pools,
        [
            svc("plain"),
            svc("by-pool", requested_pool="manual"),
            svc("by-ip", requested_ips=("192.0.2.3",)),
            svc("ghost", requested_pool="nope"),
        ],
        {},
    )
    a = r.assignments
    assert a["default/plain"].pool == "auto"
    assert a["default/by-pool"].pool == "manual"
    assert a["default/by-ip"].ips == ("192.0.2.3",)
    assert a["default/ghost"].reason is Reason.POOL_UNKNOWN


def test_pool_ranking_priority_then_selectors() -> None:
    pools = [
        pool("zz-low", "192.0.2.0/30", priority=5),
        pool("aa-none", "198.51.100.0/30"),
        pool("mm-high", "203.0.113.0/30", priority=1),
        pool("sel", "198.18.0.0/30", priority=5, service_selectors=(MatchLabels((("t", "x"),)),)),
        pool("ns-only", "198.18.1.0/30", namespaces=("prod",)),
    ]
    r = allocate(pools, [svc("plain"), svc("lab", labels={"t": "x"}), svc("p", ns="prod")], {})
    assert r.assignments["default/plain"].pool == "mm-high"
    pools = [p for p in pools if p.name != "mm-high"]
    r = allocate(pools, [svc("plain"), svc("lab", labels={"t": "x"}), svc("p", ns="prod")], {})
    assert r.assignments["default/plain"].pool == "zz-low"
    assert r.assignments["default/lab"].pool == "sel"  # same priority, more specific
    only = [pool("ns-only", "198.18.1.0/30", namespaces=("prod",))]
    r = allocate(only, [svc("plain"), svc("p", ns="prod")], {})
    assert r.assignments["prod/p"].pool == "ns-only"
    assert r.assignments["default/plain"].reason is Reason.NO_POOL


def test_namespace_selector() -> None:
    sel = MatchLabels((("team", "a"),))
    pools = [pool("a", "192.0.2.0/30", namespace_selectors=(sel,))]
    r = allocate(
        pools, [svc("in", ns="x", namespace_labels={"team": "a"}), svc("out", ns="y")], {}
    )
    assert r.assignments["x/in"].ok and not r.assignments["y/out"].ok


def test_relabelled_namespace_keeps_held_address_but_gets_no_new_one() -> None:
    """serviceAllocation chooses where new addresses come from; it never takes one away."""
    sel = MatchLabels((("team", "a"),))
    pools = [pool("a", "192.0.2.0/30", namespace_selectors=(sel,))]
    r = allocate(pools, [svc("in", ns="x", namespace_labels={"team": "a"})], {})
    held = r.assignments["x/in"].ips
    assert held
    r2 = allocate(pools, [svc("in", ns="x"), svc("new", ns="x")], r.current())
    assert r2.assignments["x/in"].ips == held and r2.assignments["x/in"].reason is Reason.KEPT
    assert not r2.assignments["x/new"].ok
    # a pool that no longer contains the address still moves it (the config demands it)
    shrunk = [pool("a", "198.51.100.0/30")]
    r3 = allocate(shrunk, [svc("in", ns="x", namespace_labels={"team": "a"})], r.current())
    assert r3.assignments["x/in"].ips != held


def test_dual_stack_policies_and_order() -> None:
    pools = [pool("v4", "192.0.2.0/30"), pool("ds", "198.51.100.0/30", "2001:db8::/64")]
    r = allocate(
        pools,
        [
            svc("single6", ip_families=(6,)),
            svc("prefer", ip_families=(6, 4), ip_family_policy="PreferDualStack"),
            svc("require", ip_families=(4, 6), ip_family_policy="RequireDualStack"),
        ],
        {},
    )
    a = r.assignments
    assert a["default/prefer"].ips == ("2001:db8::", "198.51.100.0")  # v6 first, one pool
    assert a["default/require"].ips == ("198.51.100.1", "2001:db8::1")
    assert a["default/single6"].ips == ("2001:db8::2",)
    assert a["default/require"].pool == "ds"


def test_require_dual_stack_without_dual_pool_fails_prefer_degrades() -> None:
    pools = [pool("v4", "192.0.2.0/30")]
    r = allocate(
        pools,
        [
            svc("req", ip_families=(4, 6), ip_family_policy="RequireDualStack"),
            svc("pref", ip_families=(4, 6), ip_family_policy="PreferDualStack"),
        ],
        {},
    )
    assert r.assignments["default/req"].reason is Reason.NO_POOL
    assert r.assignments["default/req"].ips == ()
    pref = r.assignments["default/pref"]
    assert pref.ok and pref.ips == ("192.0.2.0",) and "IPv6" in pref.message


def test_family_dropped_releases_that_address() -> None:
    pools = [pool("ds", "192.0.2.0/30", "2001:db8::/64")]
    r = allocate(pools, [svc("x")], {"default/x": ("192.0.2.1", "2001:db8::1")})
    x = r.assignments["default/x"]
    assert x.ips == ("192.0.2.1",)
    assert x.invalidated[0][0] == "2001:db8::1"


def test_sharing_rules() -> None:
    pools = [pool("a", "192.0.2.0/30")]
    r = allocate(
        pools,
        [
            svc("a-web", sharing_key="k", ports=((80, "TCP"),)),
            svc("b-dns", sharing_key="k", ports=((53, "UDP"),)),
            svc("c-clash", sharing_key="k", ports=((80, "TCP"),)),
            svc("d-otherkey", sharing_key="j", ports=((22, "TCP"),)),
            svc("e-local", sharing_key="k", ports=((443, "TCP"),), traffic_policy="Local"),
        ],
        {},
    )
    a = r.assignments
    assert a["default/b-dns"].ips == a["default/a-web"].ips == ("192.0.2.0",)
    assert a["default/c-clash"].ips != a["default/a-web"].ips
    assert a["default/d-otherkey"].ips != a["default/a-web"].ips
    assert a["default/e-local"].ips != a["default/a-web"].ips
    assert r.holders()["192.0.2.0"] == ("default/a-web", "default/b-dns")


def test_local_sharing_needs_same_selector() -> None:
    pools = [pool("a", "192.0.2.0/30")]
    base = {"sharing_key": "k", "traffic_policy": "Local"}
    r = allocate(
        pools,
        [
            svc("a", ports=((80, "TCP"),), selector=(("app", "x"),), **base),
            svc("b", ports=((81, "TCP"),), selector=(("app", "x"),), **base),
            svc("c", ports=((82, "TCP"),), selector=(("app", "y"),), **base),
        ],
        {},
    )
    a = r.assignments
    assert a["default/a"].ips == a["default/b"].ips != a["default/c"].ips


def test_requested_shared_ip() -> None:
    pools = [pool("a", "192.0.2.0/30")]
    r = allocate(
        pools,
        [
            svc("a", sharing_key="k", ports=((80, "TCP"),)),
            svc("b", sharing_key="k", ports=((81, "TCP"),), requested_ips=("192.0.2.0",)),
        ],
        {"default/a": ("192.0.2.0",)},
    )
    assert r.assignments["default/b"].ips == ("192.0.2.0",)


def test_release_on_type_class_and_deletion() -> None:
    pools = [pool("a", "192.0.2.0/30")]
    current = {
        "default/np": ("192.0.2.0",),
        "default/other": ("192.0.2.1",),
        "default/gone": ("192.0.2.2",),
    }
    r = allocate(
        pools,
        [svc("np", type="NodePort"), svc("other", load_balancer_class="example.com/lb")],
        current,
    )
    assert r.assignments["default/np"].reason is Reason.NOT_LOAD_BALANCER
    assert r.assignments["default/other"].reason is Reason.CLASS_NOT_OURS
    assert r.current() == {}
    assert [g.service for g in r.released] == ["default/gone"]
    # our own class is accepted
    r = allocate(pools, [svc("other", load_balancer_class="x/lb")], {}, load_balancer_class="x/lb")
    assert r.assignments["default/other"].ok


def test_pool_removed_or_shrunk_moves_with_reason() -> None:
    current = {"default/x": ("192.0.2.9",), "default/y": ("192.0.2.1",)}
    r = allocate([pool("a", "192.0.2.0/29")], [svc("x"), svc("y")], current)
    assert r.assignments["default/y"].reason is Reason.KEPT
    x = r.assignments["default/x"]
    assert x.reason is Reason.MOVED and x.ips == ("192.0.2.0",)
    assert "outside every pool" in x.message
    r = allocate([], [svc("x")], current)
    assert r.assignments["default/x"].reason is Reason.NO_POOL
    assert r.assignments["default/x"].invalidated


def test_corrupt_state_two_claims_resolved_by_key_order() -> None:
    current = {"default/a": ("192.0.2.1",), "default/b": ("192.0.2.1",)}
    r = allocate([pool("p", "192.0.2.0/30")], [svc("a"), svc("b")], current)
    assert r.assignments["default/a"].ips == ("192.0.2.1",)
    assert r.assignments["default/b"].ips == ("192.0.2.0",)
    assert "held by default/a" in r.assignments["default/b"].message


def test_ipv6_64_is_never_enumerated() -> None:
    pools = [pool("big", "2001:db8::/64", "2001:db8:1::/48")]
    services = [svc(f"s{i}", ip_families=(6,)) for i in range(200)]
    r = allocate(pools, services, {})
    assert len({a.ips for a in r.assignments.values()}) == 200


def test_overlapping_pools_lookup() -> None:
    pools = [pool("wide", "192.0.2.0/24", priority=2), pool("narrow", "192.0.2.8/29", priority=1)]
    r = allocate(pools, [svc("x")], {"default/x": ("192.0.2.200",)})
    assert r.assignments["default/x"].reason is Reason.KEPT
    assert r.assignments["default/x"].pool == "wide"


def test_pool_usage() -> None:
    pools = [pool("a", "192.0.2.0/30"), pool("big", "2001:db8::/64")]
    r = allocate(pools, [svc("x"), svc("y", ip_families=(6,))], {})
    assert r.pool_usage == {"a": (1, 4), "big": (1, 2**64)}


@given(
    st.text(max_size=45)
    | st.lists(st.sampled_from(["0", "00", "1", "255", "256", "١", " 7", "9"]), min_size=4,
               max_size=4).map(".".join)
)
def test_parse_address_agrees_with_ipaddress(text: str) -> None:
    try:
        expected = ipaddress.ip_address(text.strip())
    except ValueError:
        with pytest.raises(ValueError):
            parse_address(text)
        return
    assert parse_address(text) == (expected.version, int(expected))
    assert ip_text(expected.version, int(expected)) == str(expected)


@given(st.integers(0, 2**32 - 1) | st.integers(0, 2**128 - 1).map(lambda v: -v - 1))
def test_ip_text_roundtrip(n: int) -> None:
    version, value = (4, n) if n >= 0 else (6, -n - 1)
    assert parse_address(ip_text(version, value)) == (version, value)


@given(st.lists(st.sampled_from([0, 0, 0, 1, 0xA, 0xDB8, 0xFFFF]), min_size=8, max_size=8),
       st.integers(0, 2**32 - 1))
def test_ip_text_of_neighbouring_addresses_is_what_ipaddress_writes(
    groups: list[int], v4: int
) -> None:
    """ip_text remembers the text before the last group (IPv6) or byte (IPv4): addresses with
    zero runs anywhere, and their neighbours, must still read as ipaddress writes them."""
    value = 0
    for group in groups:
        value = value << 16 | group
    for v in (value, value ^ 1, value | 0xFFFF, value & ~0xFFFF):
        assert ip_text(6, v) == str(ipaddress.IPv6Address(v))
    for v in (v4, v4 ^ 1, v4 | 0xFF, v4 & ~0xFF):
        assert ip_text(4, v) == str(ipaddress.IPv4Address(v))
    # parse_address remembers the value before the last group or byte: any spelling
    for v in (value, value ^ 1, value | 0xFFFF, value & ~0xFFFF):
        address = ipaddress.IPv6Address(v)
        for text in (str(address), address.exploded, address.exploded.upper(), f" {address} "):
            assert parse_address(text) == (6, v), text
        for other in (f"{address}:1", f"{address}%", f"{address}:", f"{address}g",
                      f"{address}:12345", f"1:{address}"):
            _agrees_with_ipaddress(other)
    for v in (v4, v4 ^ 1, v4 | 0xFF, v4 & ~0xFF):
        text = str(ipaddress.IPv4Address(v))
        assert parse_address(text) == (4, v)
        for other in (f"{text}.1", f"{text}0", f"0{text}", f"{text}.", f"::ffff:{text}"):
            _agrees_with_ipaddress(other)


def _agrees_with_ipaddress(text: str) -> None:
    try:
        expected = ipaddress.ip_address(text.strip())
    except ValueError:
        with pytest.raises(ValueError):
            parse_address(text)
    else:
        assert parse_address(text) == (expected.version, int(expected)), text


def test_require_dual_stack_partial_adds_only_from_its_pool() -> None:
    """Holding an IPv4 of a pool without IPv6, a RequireDualStack service does not take the
    IPv6 from another pool (one pool per service): it stays partially assigned."""
    pools = [pool("v4", "192.0.2.0/30"), pool("ds", "198.51.100.0/30", "2001:db8::/64")]
    service = svc("x", ip_families=(4, 6), ip_family_policy="RequireDualStack")
    r = allocate(pools, [service], {"default/x": ("192.0.2.1",)})
    x = r.assignments["default/x"]
    assert x.ips == ("192.0.2.1",) and x.reason is Reason.PARTIAL
    assert "one pool per service" in x.message
