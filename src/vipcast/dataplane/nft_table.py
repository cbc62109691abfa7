"""The objects of the ``inet vipcast`` table: its fixed skeleton and the shared pick/slot chains.

:mod:`vipcast.dataplane.nft_render` explains the layout. Here are the builders of its JSON
objects (table, set, map, chain, rule), the base chains and rules every render holds, and the
``pick``/``slot`` chains and maps that come and go with the backend counts in use.
"""

from __future__ import annotations

import functools
from typing import Any

from vipcast.dataplane.nft_elements import IpFamily
from vipcast.spec.documents import JSON

TABLE = "vipcast"
FAMILY = "inet"
#: filter chain priority: before DNAT (dstnat is -100), so the VIP is still the destination
FILTER_PRIORITY = -110
DSTNAT_PRIORITY = -100
SRCNAT_PRIORITY = 100

#: nftables' element type of an address of each family, and the payload protocol of its header
NFT_ADDR = {4: "ipv4_addr", 6: "ipv6_addr"}
PAYLOAD = {4: "ip", 6: "ip6"}

# ---------------------------------------------------------------------------------------------
# the shared pick/slot objects (they come and go with the backend counts in use)

#: name prefixes of the chains and maps that exist only while a backend count needs them
DYNAMIC_CHAINS = ("pick", "slot")
DYNAMIC_MAPS = ("addr", "port")


@functools.lru_cache(maxsize=1024)
def slot_objects(fam: IpFamily, i: int) -> tuple[JSON, JSON, JSON, JSON]:
    """``addr<fam>-<i>`` and ``port<fam>-<i>`` (without elements), ``slot<fam>-<i>`` and its
    DNAT rule. Shared (cached) values: read-only."""
    name = f"slot{fam}-{i}"
    dnat = {
        "dnat": {
            "family": PAYLOAD[fam],
            "addr": {"map": {"key": {"concat": _key3(fam)}, "data": f"@addr{fam}-{i}"}},
            "port": {"map": {"key": {"concat": _key3(fam)}, "data": f"@port{fam}-{i}"}},
        }
    }
    return (
        map_obj(f"addr{fam}-{i}", fam, NFT_ADDR[fam], []),
        map_obj(f"port{fam}-{i}", fam, "inet_service", []),
        _obj("chain", name=name),
        _rule(name, [dnat]),
    )


@functools.lru_cache(maxsize=1024)
def pick_objects(fam: IpFamily, n: int) -> tuple[JSON, JSON]:
    """``pick<fam>-<n>`` and its rule: a uniform random choice among slots 0..n-1."""
    name = f"pick{fam}-{n}"
    table = [[i, {"goto": {"target": f"slot{fam}-{i}"}}] for i in range(n)]
    vmap = {"vmap": {"key": {"numgen": {"mode": "random", "mod": n, "offset": 0}},
                     "data": {"set": table}}}
    return _obj("chain", name=name), _rule(name, [vmap])


def picker(fam: IpFamily, n: int) -> str:
    """The chain a VIP port with ``n`` usable backends jumps to."""
    return f"slot{fam}-0" if n == 1 else f"pick{fam}-{n}"


# ---------------------------------------------------------------------------------------------
# object builders and the fixed skeleton


def _obj(kind: str, **fields: Any) -> JSON:
    base: JSON = {"family": FAMILY, "table": TABLE} if kind != "table" else {"family": FAMILY}
    if kind in ("set", "map"):
        # nft prints sets as family, name, table, ...
        return {kind: {"family": FAMILY, "name": fields.pop("name"), "table": TABLE, **fields}}
    return {kind: {**base, **fields}}


def set_obj(
    name: str, types: list[str], elems: list[Any], flags: list[str] | None = None
) -> JSON:
    fields: JSON = {"name": name, "type": types}
    if flags:
        fields["flags"] = flags
    if elems:
        fields["elem"] = elems
    return _obj("set", **fields)


def map_obj(name: str, fam: IpFamily, data: str, elems: list[list[Any]]) -> JSON:
    fields: JSON = {
        "name": name,
        "type": [NFT_ADDR[fam], "inet_proto", "inet_service"],
        "map": data,
    }
    obj = _obj("map", **fields)
    return with_elems(obj, elems)


def with_elems(obj: JSON, elems: list[list[Any]]) -> JSON:
    """``obj`` with these elements (already in the render's order: by key)."""
    if not elems:
        return obj
    ((kind, body),) = obj.items()
    return {kind: {**body, "elem": elems}}


def base_chains() -> list[JSON]:
    def base(name: str, type_: str, hook: str, prio: int) -> JSON:
        return _obj(
            "chain", name=name, type=type_, hook=hook, prio=prio, policy="accept"
        )

    return [
        _obj("chain", name="source-check4"),
        _obj("chain", name="source-check6"),
        base("filter-prerouting", "filter", "prerouting", FILTER_PRIORITY),
        base("prerouting", "nat", "prerouting", DSTNAT_PRIORITY),
        base("output", "nat", "output", DSTNAT_PRIORITY),
        base("postrouting", "nat", "postrouting", SRCNAT_PRIORITY),
    ]


def _key3(fam: IpFamily, field: str = "daddr") -> list[JSON]:
    return [
        {"payload": {"protocol": PAYLOAD[fam], "field": field}},
        {"meta": {"key": "l4proto"}},
        {"payload": {"protocol": "th", "field": "dport"}},
    ]


def _match(left: Any, right: Any, op: str = "==") -> JSON:
    return {"match": {"op": op, "left": left, "right": right}}


def _rule(chain: str, expr: list[JSON], comment: str | None = None) -> JSON:
    fields: JSON = {"chain": chain, "expr": expr}
    if comment is not None:
        fields["comment"] = comment
    return _obj("rule", **fields)


def base_rules() -> list[JSON]:
    rules: list[JSON] = []
    families: tuple[IpFamily, IpFamily] = (4, 6)
    for fam in families:
        # one hash lookup per packet; only restricted VIP ports pay for the source check
        rules.append(
            _rule(
                "filter-prerouting",
                [
                    _match({"concat": _key3(fam)}, f"@restricted{fam}"),
                    {"jump": {"target": f"source-check{fam}"}},
                ],
            )
        )
    for fam in families:
        saddr = {"payload": {"protocol": PAYLOAD[fam], "field": "saddr"}}
        rules.append(
            _rule(
                f"source-check{fam}",
                [_match({"concat": [*_key3(fam), saddr]}, f"@allow{fam}"), {"return": None}],
            )
        )
        rules.append(_rule(f"source-check{fam}", [{"drop": None}]))
    for chain in ("prerouting", "output"):
        rules.extend(
            _rule(chain, [{"vmap": {"key": {"concat": _key3(fam)}, "data": f"@svc{fam}"}}])
            for fam in (4, 6)
        )
    rules.extend(
        _rule(
            "postrouting",
            [
                _match({"ct": {"key": "status"}}, "dnat", op="in"),
                _match({"concat": _key3(fam)}, f"@remote{fam}"),
                {"masquerade": None},
            ],
        )
        for fam in (4, 6)
    )
    return rules
