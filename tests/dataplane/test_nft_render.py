"""The render is pure: snapshots of representative plans, and properties over random ones.

A missing or different snapshot fails. Regenerate them (only then are they written) with
``VIPCAST_UPDATE_SNAPSHOTS=1 pytest tests/dataplane/test_nft_render.py`` and review the diff.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import pytest
from dp_plans import (
    CLUSTER_WEB,
    DNS_V6,
    LOCAL_WEB,
    MIXED,
    RESTRICTED,
    SNAPSHOT_PLANS,
    scale_rules,
)
from hypothesis import given
from hypothesis import strategies as st

from vipcast.core.desired import Backend, NatRule
from vipcast.dataplane.nft_render import (
    RenderCache,
    down_set,
    render,
    usable_backends,
)

SNAPSHOTS = Path(__file__).with_name("snapshots")


@pytest.mark.parametrize("name", sorted(SNAPSHOT_PLANS))
def test_snapshot(name: str) -> None:
    doc = render(SNAPSHOT_PLANS[name]).document()
    text = json.dumps(doc, indent=1, sort_keys=False) + "\n"
    path = SNAPSHOTS / f"{name}.json"
    if os.environ.get("VIPCAST_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert path.exists(), (f"snapshot {path} missing: write it with VIPCAST_UPDATE_SNAPSHOTS=1 "
                           "and review it before committing")
    assert text == path.read_text(), f"render of {name} differs from {path}"


def test_every_snapshot_belongs_to_a_plan() -> None:
    """A snapshot file without its plan would never be compared: stale, remove it."""
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.json")) == sorted(SNAPSHOT_PLANS)


def _objects(kind: str, rules: tuple[NatRule, ...], **kw: Any) -> dict[str, dict[str, Any]]:
    return {
        o[kind]["name"]: o[kind] for o in render(rules, **kw).objects if kind in o
    }


def _rules(rules: tuple[NatRule, ...], **kw: Any) -> list[dict[str, Any]]:
    return [o["rule"] for o in render(rules, **kw).objects if "rule" in o]


def _verdict(rules: tuple[NatRule, ...], key: list[Any], **kw: Any) -> str | None:
    """The chain the VIP port ``key`` (``[vip, proto, port]``) jumps to; None: not rendered."""
    maps = _objects("map", rules, **kw)
    fam = ipaddress.ip_address(key[0]).version
    found = [v for k, v in maps[f"svc{fam}"].get("elem", []) if k["concat"] == key]
    return found[0]["goto"]["target"] if found else None


def _targets(rules: tuple[NatRule, ...], key: list[Any], **kw: Any) -> list[tuple[str, int]]:
    """The backends of the VIP port ``key``, slot by slot, from the addr/port maps."""
    maps = _objects("map", rules, **kw)
    fam = ipaddress.ip_address(key[0]).version
    out = []
    for i in range(len(maps)):
        addr = dict((repr(k), v) for k, v in maps.get(f"addr{fam}-{i}", {}).get("elem", []))
        port = dict((repr(k), v) for k, v in maps.get(f"port{fam}-{i}", {}).get("elem", []))
        k = repr({"concat": key})
        assert (k in addr) == (k in port), f"slot {i}: address and port maps disagree"
        if k not in addr:
            break
        out.append((addr[k], port[k]))
    return out


def test_document_replaces_table_in_one_batch() -> None:
    cmds = render((CLUSTER_WEB,)).document()["nftables"]
    assert cmds[1] == {"add": {"table": {"family": "inet", "name": "vipcast"}}}
    assert cmds[2] == {"delete": {"table": {"family": "inet", "name": "vipcast"}}}
    kinds = [next(iter(c["add"])) for c in cmds[3:]]
    # chains exist before the verdict map elements that jump to them
    assert kinds.index("chain") < kinds.index("map") < kinds.index("rule")


def test_cluster_spreads_over_ready_backends_and_masquerades_only_remote() -> None:
    key = ["203.0.113.10", "tcp", 80]
    assert _targets((CLUSTER_WEB,), key) == [("192.0.2.2", 8080), ("192.0.2.6", 8080)]
    assert _verdict((CLUSTER_WEB,), key) == "pick4-2"
    (pick,) = [r for r in _rules((CLUSTER_WEB,)) if r["chain"] == "pick4-2"]
    vmap = pick["expr"][0]["vmap"]
    assert vmap["key"]["numgen"] == {"mode": "random", "mod": 2, "offset": 0}
    assert vmap["data"]["set"] == [[0, {"goto": {"target": "slot4-0"}}],
                                   [1, {"goto": {"target": "slot4-1"}}]]
    remote = _objects("set", (CLUSTER_WEB,))["remote4"]
    assert remote["elem"] == [{"concat": ["192.0.2.6", "tcp", 8080]}]


def test_slot_chain_dnats_to_address_and_port_from_its_maps() -> None:
    (slot,) = [r for r in _rules((CLUSTER_WEB,)) if r["chain"] == "slot4-1"]
    dnat = slot["expr"][0]["dnat"]
    assert dnat["family"] == "ip"
    assert dnat["addr"]["map"]["data"] == "@addr4-1"
    assert dnat["port"]["map"]["data"] == "@port4-1"
    # looked up by the packet's own VIP key, the same key the verdict map used
    assert dnat["addr"]["map"]["key"] == dnat["port"]["map"]["key"]
    assert [p["payload"]["field"] for p in dnat["addr"]["map"]["key"]["concat"][::2]] == [
        "daddr", "dport"]


def test_local_policy_uses_only_local_backends_without_snat() -> None:
    key = ["203.0.113.11", "tcp", 443]
    assert _targets((LOCAL_WEB,), key) == [("192.0.2.2", 8443)]
    assert _verdict((LOCAL_WEB,), key) == "slot4-0"  # one backend: no random pick
    assert "elem" not in _objects("set", (LOCAL_WEB,))["remote4"]


def test_source_ranges_are_collapsed_per_family() -> None:
    sets = _objects("set", (RESTRICTED,))
    assert sets["restricted4"]["elem"] == [{"concat": ["203.0.113.12", "tcp", 22]}]
    assert sets["allow4"]["elem"] == [
        {"concat": ["203.0.113.12", "tcp", 22, {"prefix": {"addr": "198.51.100.0", "len": 24}}]}
    ]
    assert "elem" not in sets["allow6"]


def test_source_range_everything_means_unrestricted() -> None:
    open_rule = NatRule(**{**RESTRICTED.__dict__, "source_ranges": ("0.0.0.0/0",)})
    assert "elem" not in _objects("set", (open_rule,))["restricted4"]


def test_ipv6_uses_ip6_dnat_and_compressed_addresses() -> None:
    (slot,) = [r for r in _rules((DNS_V6,)) if r["chain"] == "slot6-0"]
    assert slot["expr"][0]["dnat"]["family"] == "ip6"
    key = ["2001:db8:f::10", "udp", 53]
    assert ("2001:db8:1::35", 5353) in _targets((DNS_V6,), key)
    vmap = _objects("map", (DNS_V6,))["svc6"]
    assert vmap["elem"][0][0] == {"concat": key}
    assert "addr4-0" not in _objects("map", (DNS_V6,))  # no IPv4 service, no IPv4 slots


def test_down_backends_leave_the_map_and_all_down_drops_the_service() -> None:
    key = ["203.0.113.10", "tcp", 80]
    is_down = down_set([("192.0.2.6", 8080)])
    assert _targets((CLUSTER_WEB,), key, is_down=is_down) == [("192.0.2.2", 8080)]
    assert _verdict((CLUSTER_WEB,), key, is_down=is_down) == "slot4-0"
    assert "pick4-2" not in _objects("chain", (CLUSTER_WEB,), is_down=is_down)
    all_down = down_set([("192.0.2.6", 8080), ("192.0.2.2", 8080)])
    maps = _objects("map", (CLUSTER_WEB,), is_down=all_down)
    assert "elem" not in maps["svc4"] and "addr4-0" not in maps


def test_duplicate_vip_port_is_skipped_with_a_reason() -> None:
    twin = NatRule(**{**CLUSTER_WEB.__dict__, "service": "other/web"})
    out = render((CLUSTER_WEB, twin))
    assert [s.service for s in out.skipped] == ["other/web"]
    assert len(_objects("map", (CLUSTER_WEB, twin))["svc4"]["elem"]) == 1


def test_render_is_order_independent_and_digest_stable() -> None:
    assert render(MIXED).objects == render(tuple(reversed(MIXED))).objects
    assert render(MIXED).digest == render(MIXED).digest


# --------------------------------------------------------------------------- properties

_v4 = st.integers(0, 255).map(lambda i: f"198.18.0.{i}")
_v6 = st.integers(1, 0xFFFF).map(lambda i: f"2001:db8::{i:x}")

# an address is on this node or it is not: ``local`` is a function of the address (the same
# backend address local in one rule and remote in another cannot happen, and the remote set,
# which is keyed by address, could not honour both)
def _is_local(ip: str) -> bool:
    return int(ipaddress.ip_address(ip)) % 3 == 0


_backend = st.one_of(_v4, _v6).flatmap(
    lambda ip: st.builds(
        Backend,
        ip=st.just(ip),
        port=st.integers(1, 65535),
        node=st.sampled_from(["n1", "n2", None]),
        local=st.just(_is_local(ip)),
        ready=st.booleans(),
    )
)
_rule = st.builds(
    NatRule,
    service=st.sampled_from(["a/x", "a/y", "b/x-y", "c/z.w"]),
    vip=st.one_of(_v4, _v6),
    port=st.integers(1, 65535),
    protocol=st.sampled_from(["TCP", "UDP", "SCTP"]),
    backends=st.lists(_backend, max_size=6).map(tuple),
    traffic_policy=st.sampled_from(["Cluster", "Local"]),
    source_ranges=st.lists(
        st.sampled_from(["198.51.100.0/24", "198.51.100.0/25", "0.0.0.0/0", "2001:db8::/48"]),
        max_size=3,
    ).map(tuple),
)


@given(st.lists(_rule, max_size=8).map(tuple))
def test_render_properties(rules: tuple[NatRule, ...]) -> None:
    out = render(rules)
    json.dumps(out.document())  # serialisable
    chains = {o["chain"]["name"] for o in out.objects if "chain" in o}
    maps = {o["map"]["name"]: o["map"] for o in out.objects if "map" in o}
    for m in maps.values():
        keys = [repr(e[0]) for e in m.get("elem", [])]
        assert len(keys) == len(set(keys)), "one value per VIP:port/protocol in each map"
    remote = {
        tuple(e["concat"])
        for o in out.objects
        if "set" in o and o["set"]["name"].startswith("remote")
        for e in o["set"].get("elem", [])
    }
    def vip_port(rule: NatRule) -> list[Any]:
        return [str(ipaddress.ip_address(rule.vip)), rule.protocol.lower(), rule.port]

    claims = collections.Counter(tuple(vip_port(r)) for r in rules)
    for rule in rules:
        fam = ipaddress.ip_address(rule.vip).version
        key = vip_port(rule)
        if claims[tuple(key)] > 1:
            continue  # one of the rules claiming this VIP port is rendered (test_duplicate_...)
        usable = usable_backends(rule)
        for b in usable:
            assert ipaddress.ip_address(b.ip).version == fam
            assert b.ready
            if rule.traffic_policy == "Local":
                assert b.local
            if b.local:
                assert (str(ipaddress.ip_address(b.ip)), rule.protocol.lower(), b.port) \
                    not in remote
        # exactly the usable backends fill slots 0..n-1, and the verdict leads to them
        assert _targets(rules, key) == [(str(ipaddress.ip_address(b.ip)), b.port)
                                        for b in usable]
        target = _verdict(rules, key)
        assert (target is None) == (not usable)
        if target is not None:
            assert target in chains
            assert target == (f"slot{fam}-0" if len(usable) == 1 else f"pick{fam}-{len(usable)}")
    for name in chains:
        if name.startswith("slot"):
            fam, i = name[4], int(name.split("-")[1])
            assert f"addr{fam}-{i}" in maps and f"port{fam}-{i}" in maps


def test_chains_do_not_grow_with_services() -> None:
    """Services share the pick/slot chains: the chain count depends on backend counts only."""
    def chains(rules: tuple[NatRule, ...]) -> set[str]:
        return {o["chain"]["name"] for o in render(rules).objects if "chain" in o}

    few, many = chains(scale_rules(10, 3)), chains(scale_rules(2000, 3))
    assert few == many
    assert {c for c in many if c.startswith(("pick", "slot"))} == {
        "pick4-3", "slot4-0", "slot4-1", "slot4-2"}


def _rendered_ports(rendered: Any) -> int:
    return sum(
        len(o["map"].get("elem", [])) for o in rendered.objects
        if "map" in o and o["map"]["name"] in ("svc4", "svc6")
    )


def test_render_cache_gives_the_same_table_through_a_sequence_of_changes() -> None:
    cache = RenderCache()
    steps: list[tuple[tuple[NatRule, ...], tuple[tuple[str, int], ...]]] = [
        (MIXED, ()),
        ((CLUSTER_WEB, LOCAL_WEB), ()),
        ((CLUSTER_WEB, LOCAL_WEB), (("192.0.2.6", 8080),)),
        (MIXED, (("192.0.2.6", 8443),)),
        (scale_rules(20, 3), ()),
        (scale_rules(20, 3, bump=1), ()),
        ((), ()),
        (MIXED, ()),
    ]
    for rules, down in steps:
        with_cache = render(rules, down_set(down), cache)
        assert with_cache == render(rules, down_set(down))
        assert len(cache) == _rendered_ports(with_cache)  # only what the last render used
