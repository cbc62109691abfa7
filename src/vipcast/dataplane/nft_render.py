"""Render a node's NAT duties as one libnftables JSON document (pure).

Theory of operation
-------------------
Everything lives in one table of our own, ``inet vipcast``, so the rest of the host's ruleset is
never touched and the whole table can be replaced in one transaction. The table's size in
*chains* does not grow with the number of services: every per-service fact is a set or map
element, so a change of one service (a health flip) is a few element updates in one
transaction. (libnftables reads the table's chains and rules before every command: with a chain
per VIP port, 10,000 services made each command cost 70-150 ms; with elements it costs about
1 ms. Measured in ``bench/health_flip.json``.)

* ``svc4`` / ``svc6`` verdict maps ``daddr . l4proto . dport -> goto <picker>``; the
  ``prerouting`` (traffic arriving) and ``output`` (traffic the node sends itself, e.g. the
  verified-announcement probe) nat chains look the VIP up there with one rule per family.
* a VIP port with N usable backends goes to ``pick<fam>-<N>`` (or straight to ``slot<fam>-0``
  when N is 1), a chain shared by every service with N backends holding one rule:
  ``numgen random mod N vmap { 0 : goto slot<fam>-0, ... }``.
* ``slot<fam>-<i>`` (shared too) DNATs to the service's i-th backend, looked up by the same
  ``daddr . l4proto . dport`` key in the maps ``addr<fam>-<i>`` (backend address) and
  ``port<fam>-<i>`` (backend port). The backends of a service fill slots 0..N-1 in a stable
  order. Two maps rather than one ``addr . port`` map: nft 1.0.6's JSON parser (Debian 12)
  cannot declare a named map with concatenated data (nor a ``typeof`` map); the address and
  port of a ``dnat`` can come from two lookups, and both maps stay plain JSON.
  Conntrack keeps an established connection on the backend it got, whatever the maps say later.
* ``remote4`` / ``remote6`` sets of backends on other nodes (``Cluster`` policy only); the
  ``postrouting`` chain masquerades DNATed traffic to them, so their replies come back through
  this node. Local backends are never masqueraded and see the client's own address.
* ``restricted4/6`` (``vip . l4proto . port``, a hash set) and ``allow4/6``
  (``vip . l4proto . port . source-prefix``, an interval set) implement
  ``loadBalancerSourceRanges`` in a filter chain that runs just before DNAT (``dstnat - 10``):
  a packet to a restricted VIP:port jumps to ``source-check4/6``, which returns for an allowed
  source and drops anything else. Unrestricted traffic pays one hash lookup per packet.

Only the ``pick``/``slot`` chains and the ``addr``/``port`` maps come and go (with the largest
backend count in use); the rest is a fixed skeleton.

The document is written in the canonical form ``nft -j list table inet vipcast`` prints back
(sorted elements, compressed addresses, no handles), so :mod:`vipcast.dataplane.nft` can compare
the kernel's read-back with a render and skip the transaction when nothing changed.

This module fills the maps and sets with the elements of the services (and keeps per-service
pieces between renders); the table's objects and fixed skeleton are built in
:mod:`vipcast.dataplane.nft_table`, the canonical element values in
:mod:`vipcast.dataplane.nft_elements`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vipcast.core.desired import Backend, NatRule
from vipcast.dataplane.nft_elements import (
    PROTO_NAME,
    IpFamily,
    canon_ip,
    elem_key,
    family_of,
    parsed_ip,
    prefix_value,
    source_prefixes,
)
from vipcast.dataplane.nft_table import (
    FAMILY,
    NFT_ADDR,
    TABLE,
    base_chains,
    base_rules,
    map_obj,
    pick_objects,
    picker,
    set_obj,
    slot_objects,
    with_elems,
)
from vipcast.spec.documents import JSON

#: ``(ip, port)`` of a backend the health checker considers down
BackendKey = tuple[str, int]


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
    fam = family_of(rule.vip)
    out = {
        b
        for b in rule.backends
        if b.ready
        and not is_down(b)
        and family_of(b.ip) == fam
        and (rule.traffic_policy == "Cluster" or b.local)
    }
    return tuple(sorted(out, key=lambda b: (parsed_ip(b.ip)[:2], b.port)))


def down_set(keys: Iterable[BackendKey]) -> Callable[[Backend], bool]:
    """A predicate for :func:`render` from the ``(ip, port)`` pairs known to be down."""
    frozen = frozenset((canon_ip(ip), port) for ip, port in keys)
    return lambda b: (canon_ip(b.ip), b.port) in frozen


# ---------------------------------------------------------------------------------------------
# the render


@dataclass(frozen=True)
class Piece:
    """One rendered VIP port: its verdict-map element and its backends' slot elements."""

    fam: IpFamily
    #: ``{"concat": [vip, proto, port]}``, the key of every element below
    key: JSON
    verdict: list[Any]
    #: per slot i: the ``addr<fam>-<i>`` and ``port<fam>-<i>`` elements
    slots: tuple[tuple[list[Any], list[Any]], ...]
    #: ``remote<fam>`` elements (Cluster policy, backends on other nodes)
    remote: tuple[tuple[str, str, int], ...]
    #: where its elements sort in every map (by address, protocol, port)
    order: tuple[Any, ...] = ()


class RenderCache:
    """Per-service pieces of earlier renders, owned by the caller (one per node data plane).

    A render with a cache reuses the elements of every VIP port whose rule and usable backends
    are unchanged. Entries not used by the latest render are dropped. The cached objects are
    shared between renders: treat rendered objects as read-only.
    """

    def __init__(self) -> None:
        self._pieces: dict[tuple[NatRule, tuple[Backend, ...]], Piece] = {}
        self._order: dict[NatRule, tuple[Any, ...]] = {}
        self._used: dict[tuple[NatRule, tuple[Backend, ...]], Piece] = {}

    def __len__(self) -> int:
        return len(self._pieces)

    def order(self, rule: NatRule) -> tuple[Any, ...]:
        key = self._order.get(rule)
        if key is None:
            key = self._order[rule] = _rule_order(rule)
        return key

    def piece(self, rule: NatRule, backends: tuple[Backend, ...]) -> Piece:
        key = (rule, backends)
        found = self._pieces.get(key)
        if found is None:
            found = service_piece(rule, backends)
        self._used[key] = found
        return found

    def finish(self) -> None:
        """Keep only what the render just used."""
        self._pieces, self._used = self._used, {}
        live = {rule for rule, _ in self._pieces}
        self._order = {rule: key for rule, key in self._order.items() if rule in live}


def service_piece(rule: NatRule, backends: tuple[Backend, ...]) -> Piece:
    """The elements of ``rule`` with its usable ``backends`` (at least one)."""
    vip = canon_ip(rule.vip)
    fam = family_of(vip)
    proto = PROTO_NAME[rule.protocol]
    key: JSON = {"concat": [vip, proto, rule.port]}
    slots = tuple(([key, canon_ip(b.ip)], [key, b.port]) for b in backends)
    remote: tuple[tuple[str, str, int], ...] = ()
    if rule.traffic_policy == "Cluster":
        remote = tuple((canon_ip(b.ip), proto, b.port) for b in backends if not b.local)
    return Piece(fam, key, [key, {"goto": {"target": picker(fam, len(backends))}}], slots,
                 remote, elem_key((vip, proto, rule.port)))



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
    pieces: dict[IpFamily, list[Piece]] = {4: [], 6: []}
    remote: dict[IpFamily, set[tuple[str, str, int]]] = {4: set(), 6: set()}
    allow: dict[IpFamily, list[tuple[str, str, int, str, int]]] = {4: [], 6: []}
    restricted: dict[IpFamily, list[tuple[str, str, int]]] = {4: [], 6: []}

    for rule in sorted(rules, key=_rule_order if cache is None else cache.order):
        vip = canon_ip(rule.vip)
        fam = family_of(vip)
        proto = PROTO_NAME[rule.protocol]
        key = (vip, proto, rule.port)
        if key in seen:
            skipped.append(
                Skipped(rule.service, f"{vip}:{rule.port}/{proto} already used by {seen[key]}")
            )
            continue
        seen[key] = rule.service
        foreign = [b for b in rule.backends if family_of(b.ip) != fam]
        if foreign:
            skipped.append(
                Skipped(rule.service, f"{len(foreign)} backend(s) of the other address family")
            )
        ranges = source_prefixes(rule.source_ranges, fam)
        if ranges is not None:
            restricted[fam].append(key)
            allow[fam].extend((*key, str(n.network_address), n.prefixlen) for n in ranges)
        backends = usable_backends(rule, is_down)
        if not backends:
            continue
        piece = service_piece(rule, backends) if cache is None else cache.piece(rule, backends)
        pieces[fam].append(piece)
        remote[fam].update(piece.remote)
    if cache is not None:
        cache.finish()
    # one sort per family; every map's elements follow it (a map holds a subset of the keys)
    vmap: dict[IpFamily, list[list[Any]]] = {4: [], 6: []}
    slots: dict[IpFamily, list[tuple[list[Any], list[Any]]]] = {4: [], 6: []}
    counts: dict[IpFamily, set[int]] = {4: set(), 6: set()}
    for fam, mine in pieces.items():
        mine.sort(key=_piece_order)
        per_slot = slots[fam]
        for piece in mine:
            vmap[fam].append(piece.verdict)
            counts[fam].add(len(piece.slots))
            for i, pair in enumerate(piece.slots):
                if i == len(per_slot):
                    per_slot.append(([], []))
                per_slot[i][0].append(pair[0])
                per_slot[i][1].append(pair[1])

    objects: list[JSON] = [{"table": {"family": FAMILY, "name": TABLE}}]
    chains: list[JSON] = []
    rules_out: list[JSON] = []
    for fam in (4, 6):
        objects.append(with_elems(map_obj(f"svc{fam}", fam, "verdict", []), vmap[fam]))
        for i, (addrs, ports) in enumerate(slots[fam]):
            addr_map, port_map, chain, rule_obj = slot_objects(fam, i)
            objects.append(with_elems(addr_map, addrs))
            objects.append(with_elems(port_map, ports))
            chains.append(chain)
            rules_out.append(rule_obj)
        for n in sorted(c for c in counts[fam] if c > 1):
            chain, rule_obj = pick_objects(fam, n)
            chains.append(chain)
            rules_out.append(rule_obj)
        objects.append(
            set_obj(f"remote{fam}", [NFT_ADDR[fam], "inet_proto", "inet_service"],
                     [{"concat": list(k)} for k in sorted(remote[fam], key=elem_key)])
        )
        objects.append(
            set_obj(f"restricted{fam}", [NFT_ADDR[fam], "inet_proto", "inet_service"],
                     [{"concat": list(k)} for k in sorted(restricted[fam], key=elem_key)])
        )
        objects.append(
            set_obj(
                f"allow{fam}",
                [NFT_ADDR[fam], "inet_proto", "inet_service", NFT_ADDR[fam]],
                [
                    {"concat": [v, p, port, prefix_value(addr, plen, fam)]}
                    for v, p, port, addr, plen in sorted(allow[fam], key=elem_key)
                ],
                flags=["interval"],
            )
        )
    objects.extend(chains)
    objects.extend(base_chains())
    objects.extend(rules_out)
    objects.extend(base_rules())
    return Rendered(tuple(objects), tuple(skipped))


def _piece_order(piece: Piece) -> tuple[Any, ...]:
    return piece.order


def _rule_order(rule: NatRule) -> tuple[Any, ...]:
    # NatRule's own ordering compares Backend.node, which may be None: use a total key
    return (rule.service, parsed_ip(rule.vip)[:2], rule.port, rule.protocol, repr(rule))

