"""The render is pure: snapshots of representative plans, and properties over random ones.

A missing or different snapshot fails. Regenerate them (only then are they written) with
``VIPCAST_UPDATE_SNAPSHOTS=1 pytest tests/dataplane/test_nft_render.py`` and review the diff.
"""

from __future__ import annotations

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
    chain_name,
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


def _dnat_targets(rule: dict[str, Any]) -> list[tuple[str, int]]:
    dnat = rule["expr"][1]["dnat"]
    return [tuple(e[1]["concat"]) for e in dnat["addr"]["map"]["data"]["set"]]


def test_document_replaces_table_in_one_batch() -> None:
    cmds = render((CLUSTER_WEB,)).document()["nftables"]
    assert cmds[1] == {"add": {"table": {"family": "inet", "name": "vipcast"}}}
    assert cmds[2] == {"delete": {"table": {"family": "inet", "name": "vipcast"}}}
    kinds = [next(iter(c["add"])) for c in cmds[3:]]
    # chains exist before the verdict map elements that jump to them
    assert kinds.index("chain") < kinds.index("map") < kinds.index("rule")


def test_cluster_spreads_over_ready_backends_and_masquerades_only_remote() -> None:
    (svc,) = [r for r in _rules((CLUSTER_WEB,)) if r.get("comment") == "default/web"]
    assert _dnat_targets(svc) == [("192.0.2.2", 8080), ("192.0.2.6", 8080)]
    numgen = svc["expr"][1]["dnat"]["addr"]["map"]["key"]["numgen"]
    assert numgen == {"mode": "random", "mod": 2, "offset": 0}
    remote = _objects("set", (CLUSTER_WEB,))["remote4"]
    assert remote["elem"] == [{"concat": ["192.0.2.6", "tcp", 8080]}]


def test_local_policy_uses_only_local_backends_without_snat() -> None:
    (svc,) = [r for r in _rules((LOCAL_WEB,)) if r.get("comment") == "shop/front"]
    assert _dnat_targets(svc) == [("192.0.2.2", 8443)]
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
    (svc,) = [r for r in _rules((DNS_V6,)) if r.get("comment") == "kube-system/dns"]
    assert svc["expr"][1]["dnat"]["family"] == "ip6"
    assert ("2001:db8:1::35", 5353) in _dnat_targets(svc)
    vmap = _objects("map", (DNS_V6,))["svc6"]
    assert vmap["elem"][0][0] == {"concat": ["2001:db8:f::10", "udp", 53]}


def test_down_backends_leave_the_map_and_all_down_drops_the_service() -> None:
    is_down = down_set([("192.0.2.6", 8080)])
    (svc,) = [r for r in _rules((CLUSTER_WEB,), is_down=is_down) if r.get("comment")]
    assert _dnat_targets(svc) == [("192.0.2.2", 8080)]
    all_down = down_set([("192.0.2.6", 8080), ("192.0.2.2", 8080)])
    assert "elem" not in _objects("map", (CLUSTER_WEB,), is_down=all_down)["svc4"]


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
    keys = [tuple(e[0]["concat"]) for m in maps.values() for e in m.get("elem", [])]
    assert len(keys) == len(set(keys)), "one verdict per VIP:port/protocol"
    for m in maps.values():
        for _key, verdict in m.get("elem", []):
            assert verdict["goto"]["target"] in chains
    remote = {
        tuple(e["concat"])
        for o in out.objects
        if "set" in o and o["set"]["name"].startswith("remote")
        for e in o["set"].get("elem", [])
    }
    for rule in rules:
        fam = ipaddress.ip_address(rule.vip).version
        for b in usable_backends(rule):
            assert ipaddress.ip_address(b.ip).version == fam
            assert b.ready
            if rule.traffic_policy == "Local":
                assert b.local
            if b.local:
                key = (str(ipaddress.ip_address(b.ip)), rule.protocol.lower(), b.port)
                assert key not in remote


def test_chain_names_are_distinct_and_readable() -> None:
    a = chain_name("a/b-c", "203.0.113.1", "tcp", 80)
    b = chain_name("a-b/c", "203.0.113.1", "tcp", 80)
    assert a != b and a.startswith("svc4-a-b-c-tcp80-")



def _service_chains(rendered: Any) -> int:
    return sum(
        1 for o in rendered.objects if "chain" in o and o["chain"]["name"].startswith("svc")
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
        assert len(cache) == _service_chains(with_cache)  # only what the last render used
