"""Render a node's NAT duties as one libnftables JSON document (pure).

Theory of operation
-------------------
Everything lives in one table of our own, ``inet vipcast``, so the rest of the host's ruleset is
never touched and the whole table can be replaced in one transaction. The table has a fixed
skeleton and per-service chains:

* ``svc4`` / ``svc6`` verdict maps ``daddr . l4proto . dport -> goto <service chain>``; the
  ``prerouting`` (traffic arriving) and ``output`` (traffic the node sends itself, e.g. the
  verified-announcement probe) nat chains look the VIP up there with one rule per family, so the
  cost of a packet does not grow with the number of services.
* one chain per VIP:port/protocol holding one rule: ``dnat to numgen random mod N map {...}``,
  the anonymous map spreading new connections over the N healthy backends (conntrack keeps a
  connection on the backend it got).
* ``remote4`` / ``remote6`` sets of backends on other nodes (``Cluster`` policy only); the
  ``postrouting`` chain masquerades DNATed traffic to them, so their replies come back through
  this node. Local backends are never masqueraded and see the client's own address.
* ``restricted4/6`` (``vip . l4proto . port``, a hash set) and ``allow4/6``
  (``vip . l4proto . port . source-prefix``, an interval set) implement
  ``loadBalancerSourceRanges`` in a filter chain that runs just before DNAT (``dstnat - 10``):
  a packet to a restricted VIP:port jumps to ``source-check4/6``, which returns for an allowed
  source and drops anything else. Unrestricted traffic pays one hash lookup per packet.

The document is written in the canonical form ``nft -j list table inet vipcast`` prints back
(sorted elements, compressed addresses, no handles), so :mod:`vipcast.dataplane.nft` can compare
the kernel's read-back with a render and skip the transaction when nothing changed.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vipcast.core.desired import Backend, NatRule
from vipcast.spec.documents import JSON

TABLE = "vipcast"
FAMILY = "inet"
#: filter chain priority: before DNAT (dstnat is -100), so the VIP is still the destination
FILTER_PRIORITY = -110
DSTNAT_PRIORITY = -100
SRCNAT_PRIORITY = 100

IpFamily = Literal[4, 6]
#: ``(ip, port)`` of a backend the health checker considers down
BackendKey = tuple[str, int]

_PROTO_NAME = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
_NFT_ADDR = {4: "ipv4_addr", 6: "ipv6_addr"}
_PAYLOAD = {4: "ip", 6: "ip6"}


@dataclass(frozen=True)
class Skipped:
    """A rule (or part of one) the render left out, and why. Outcomes are values."""

    service: str
    reason: str


@dataclass(frozen=True)
class Rendered:
    """The table as the kernel should hold it, plus what could not be expressed."""

    #: canonical objects (``{"table": ...}``, ``{"set": ...}``, ``{"chain": ...}``, ...)
    objects: tuple[JSON, ...]
    skipped: tuple[Skipped, ...] = ()

    def document(self) -> JSON:
        """One transaction that replaces the table atomically (or creates it)."""
        table = {"family": FAMILY, "name": TABLE}
        cmds: list[JSON] = [
            {"add": {"table": dict(table)}},
            {"delete": {"table": dict(table)}},
        ]
        # chains before maps: verdict-map elements name their target chain
        order = {"table": 0, "chain": 1, "set": 2, "map": 2, "rule": 3}
        ordered = sorted(self.objects, key=lambda obj: order[next(iter(obj))])
        cmds.extend({"add": obj} for obj in ordered)
        return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *cmds]}

    def listing(self) -> JSON:
        """The shape ``nft -j list table`` prints, without metainfo or handles."""
        return {"nftables": list(self.objects)}

    @property
    def digest(self) -> str:
        """A short stable fingerprint of the objects (for logs and metrics)."""
        raw = json.dumps(self.objects, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# health filtering


def usable_backends(
    rule: NatRule, is_down: Callable[[Backend], bool] = lambda _b: False
) -> tuple[Backend, ...]:
    """Backends of ``rule`` that may receive new connections, in a stable order.

    Ready, healthy, of the VIP's address family, and (``Local`` policy) on this node.
    """
    fam = _family(rule.vip)
    out = {
        b
        for b in rule.backends
        if b.ready
        and not is_down(b)
        and _family(b.ip) == fam
        and (rule.traffic_policy == "Cluster" or b.local)
    }
    return tuple(sorted(out, key=lambda b: (_parsed(b.ip)[:2], b.port)))


def down_set(keys: Iterable[BackendKey]) -> Callable[[Backend], bool]:
    """A predicate for :func:`render` from the ``(ip, port)`` pairs known to be down."""
    frozen = frozenset((_canon_ip(ip), port) for ip, port in keys)
    return lambda b: (_canon_ip(b.ip), b.port) in frozen


# ---------------------------------------------------------------------------------------------
# the render


class RenderCache:
    """Per-service pieces of earlier renders, owned by the caller (one per node data plane).

    A render with a cache reuses the chain name, chain and DNAT rule of every VIP port whose
    rule and usable backends are unchanged, so changing one backend among thousands renders
    one service. Entries not used by the latest render are dropped. The cached objects are
    shared between renders: treat rendered objects as read-only.
    """

    def __init__(self) -> None:
        self._pieces: dict[tuple[NatRule, tuple[Backend, ...]], tuple[str, JSON, JSON]] = {}
        self._order: dict[NatRule, tuple[Any, ...]] = {}
        self._used: dict[tuple[NatRule, tuple[Backend, ...]], tuple[str, JSON, JSON]] = {}

    def __len__(self) -> int:
        return len(self._pieces)

    def order(self, rule: NatRule) -> tuple[Any, ...]:
        key = self._order.get(rule)
        if key is None:
            key = self._order[rule] = _rule_order(rule)
        return key

    def pieces(
        self, rule: NatRule, backends: tuple[Backend, ...], fam: IpFamily, proto: str, vip: str
    ) -> tuple[str, JSON, JSON]:
        key = (rule, backends)
        found = self._pieces.get(key)
        if found is None:
            found = _service_pieces(rule, backends, fam, proto, vip)
        self._used[key] = found
        return found

    def finish(self) -> None:
        """Keep only what the render just used."""
        self._pieces, self._used = self._used, {}
        live = {rule for rule, _ in self._pieces}
        self._order = {rule: key for rule, key in self._order.items() if rule in live}


def _service_pieces(
    rule: NatRule, backends: tuple[Backend, ...], fam: IpFamily, proto: str, vip: str
) -> tuple[str, JSON, JSON]:
    chain = chain_name(rule.service, vip, proto, rule.port)
    return chain, _obj("chain", name=chain), _dnat_rule(chain, rule.service, fam, proto, backends)


def render(
    rules: Sequence[NatRule],
    is_down: Callable[[Backend], bool] = lambda _b: False,
    cache: RenderCache | None = None,
) -> Rendered:
    """The whole ``inet vipcast`` table for ``rules`` (a node plan's ``nat``).

    With a :class:`RenderCache` the unchanged services' pieces come from earlier renders (the
    result is the same as without one).
    """
    skipped: list[Skipped] = []
    seen: dict[tuple[str, str, int], str] = {}
    vmap: dict[IpFamily, list[list[Any]]] = {4: [], 6: []}
    remote: dict[IpFamily, set[tuple[str, str, int]]] = {4: set(), 6: set()}
    allow: dict[IpFamily, list[tuple[str, str, int, str, int]]] = {4: [], 6: []}
    restricted: dict[IpFamily, list[tuple[str, str, int]]] = {4: [], 6: []}
    service_chains: list[JSON] = []
    service_rules: list[JSON] = []

    for rule in sorted(rules, key=_rule_order if cache is None else cache.order):
        vip = _canon_ip(rule.vip)
        fam = _family(vip)
        proto = _PROTO_NAME[rule.protocol]
        key = (vip, proto, rule.port)
        if key in seen:
            skipped.append(
                Skipped(rule.service, f"{vip}:{rule.port}/{proto} already used by {seen[key]}")
            )
            continue
        seen[key] = rule.service
        foreign = [b for b in rule.backends if _family(b.ip) != fam]
        if foreign:
            skipped.append(
                Skipped(rule.service, f"{len(foreign)} backend(s) of the other address family")
            )
        ranges = _source_prefixes(rule.source_ranges, fam)
        if ranges is not None:
            restricted[fam].append(key)
            allow[fam].extend((*key, str(n.network_address), n.prefixlen) for n in ranges)
        backends = usable_backends(rule, is_down)
        if not backends:
            continue
        if cache is None:
            chain, chain_obj, dnat_rule = _service_pieces(rule, backends, fam, proto, vip)
        else:
            chain, chain_obj, dnat_rule = cache.pieces(rule, backends, fam, proto, vip)
        vmap[fam].append([{"concat": [vip, proto, rule.port]}, {"goto": {"target": chain}}])
        if rule.traffic_policy == "Cluster":
            remote[fam].update((_canon_ip(b.ip), proto, b.port) for b in backends if not b.local)
        service_chains.append(chain_obj)
        service_rules.append(dnat_rule)
    if cache is not None:
        cache.finish()

    objects: list[JSON] = [{"table": {"family": FAMILY, "name": TABLE}}]
    for fam in (4, 6):
        objects.append(_vmap_obj(f"svc{fam}", fam, vmap[fam]))
        objects.append(
            _set_obj(f"remote{fam}", [_NFT_ADDR[fam], "inet_proto", "inet_service"],
                     [{"concat": list(k)} for k in sorted(remote[fam], key=_elem_key)])
        )
        objects.append(
            _set_obj(f"restricted{fam}", [_NFT_ADDR[fam], "inet_proto", "inet_service"],
                     [{"concat": list(k)} for k in sorted(restricted[fam], key=_elem_key)])
        )
        objects.append(
            _set_obj(
                f"allow{fam}",
                [_NFT_ADDR[fam], "inet_proto", "inet_service", _NFT_ADDR[fam]],
                [
                    {"concat": [v, p, port, _prefix(addr, plen, fam)]}
                    for v, p, port, addr, plen in sorted(allow[fam], key=_elem_key)
                ],
                flags=["interval"],
            )
        )
    objects.extend(service_chains)
    objects.extend(_base_chains())
    objects.extend(service_rules)
    objects.extend(_base_rules())
    return Rendered(tuple(objects), tuple(skipped))


def _rule_order(rule: NatRule) -> tuple[Any, ...]:
    # NatRule's own ordering compares Backend.node, which may be None: use a total key
    return (rule.service, _parsed(rule.vip)[:2], rule.port, rule.protocol, repr(rule))


def chain_name(service: str, vip: str, proto: str, port: int) -> str:
    """A readable, collision-safe chain name for one VIP:port/protocol of a service."""
    fam = _family(vip)
    safe = "".join(c if c.isalnum() or c in ".-" else "-" for c in service)[:180]
    tag = hashlib.sha256(f"{service}|{vip}|{proto}|{port}".encode()).hexdigest()[:8]
    return f"svc{fam}-{safe}-{proto}{port}-{tag}"


# ---------------------------------------------------------------------------------------------
# pieces


def _obj(kind: str, **fields: Any) -> JSON:
    base: JSON = {"family": FAMILY, "table": TABLE} if kind != "table" else {"family": FAMILY}
    if kind in ("set", "map"):
        # nft prints sets as family, name, table, ...
        return {kind: {"family": FAMILY, "name": fields.pop("name"), "table": TABLE, **fields}}
    return {kind: {**base, **fields}}


def _set_obj(
    name: str, types: list[str], elems: list[Any], flags: list[str] | None = None
) -> JSON:
    fields: JSON = {"name": name, "type": types}
    if flags:
        fields["flags"] = flags
    if elems:
        fields["elem"] = elems
    return _obj("set", **fields)


def _vmap_obj(name: str, fam: IpFamily, elems: list[list[Any]]) -> JSON:
    fields: JSON = {
        "name": name,
        "type": [_NFT_ADDR[fam], "inet_proto", "inet_service"],
        "map": "verdict",
    }
    if elems:
        fields["elem"] = sorted(elems, key=lambda e: _elem_key(tuple(e[0]["concat"])))
    return _obj("map", **fields)


def _base_chains() -> list[JSON]:
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
        {"payload": {"protocol": _PAYLOAD[fam], "field": field}},
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


def _base_rules() -> list[JSON]:
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
        saddr = {"payload": {"protocol": _PAYLOAD[fam], "field": "saddr"}}
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


def _dnat_rule(
    chain: str, service: str, fam: IpFamily, proto: str, backends: Sequence[Backend]
) -> JSON:
    table = [
        [i, {"concat": [_canon_ip(b.ip), b.port]}] for i, b in enumerate(backends)
    ]
    dnat = {
        "dnat": {
            "family": _PAYLOAD[fam],
            "addr": {
                "map": {
                    "key": {"numgen": {"mode": "random", "mod": len(backends), "offset": 0}},
                    "data": {"set": table},
                }
            },
        }
    }
    return _rule(chain, [_match({"meta": {"key": "l4proto"}}, proto), dnat], comment=service)


def _source_prefixes(
    ranges: Sequence[str], fam: IpFamily
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """Collapsed source prefixes of ``fam``; None when the VIP is open to everyone."""
    if not ranges:
        return None
    nets = [ipaddress.ip_network(r, strict=False) for r in ranges]
    mine = [n for n in nets if n.version == fam]
    if any(n.prefixlen == 0 for n in mine):
        return None
    return list(ipaddress.collapse_addresses(mine))  # type: ignore[type-var]


def _prefix(addr: str, plen: int, fam: IpFamily) -> Any:
    full = 32 if fam == 4 else 128
    if plen == full:
        return addr
    return {"prefix": {"addr": addr, "len": plen}}


@functools.lru_cache(maxsize=1 << 16)
def _elem_key(elem: tuple[Any, ...]) -> tuple[Any, ...]:
    """Sort key of a set element (memoised: plans repeat elements from render to render)."""
    return tuple(_part_key(x) for x in elem)


def _part_key(value: Any) -> tuple[int, int, str]:
    if isinstance(value, int):
        return (1, value, "")
    text = str(value)
    if ":" in text or (text[:1].isdigit() and "." in text):
        try:
            fam, number, _ = _parsed(text)
        except ValueError:
            return (2, 0, text)
        return (0, fam << 128 | number, "")
    return (2, 0, text)


@functools.lru_cache(maxsize=1 << 16)
def _parsed(ip: str) -> tuple[IpFamily, int, str]:
    """(family, integer, canonical text) of an address; memoised (plans repeat addresses)."""
    addr = ipaddress.ip_address(ip)
    return (4 if addr.version == 4 else 6), int(addr), str(addr)


def _canon_ip(ip: str) -> str:
    return _parsed(ip)[2]


def _family(ip: str) -> IpFamily:
    return _parsed(ip)[0]
