"""The plan as a stable JSON document (``vipcast plan --json``) and the diff of two plans.

The shape is a contract, documented in ``docs/plan-json.md``; keys are only ever added.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

from vipcast.alloc import AllocationResult, Assignment
from vipcast.core.desired import BGPRoute, L2Ownership, NatRule, NodePlan
from vipcast.core.weights import route_weight, weights_by_prefix
from vipcast.proto.bgp.ext_communities import format_bandwidth

SCHEMA_VERSION = 1


def community_text(value: int) -> str:
    return f"{value >> 16}:{value & 0xFFFF}"


def route_document(route: BGPRoute) -> dict[str, Any]:
    return {
        "prefix": route.prefix,
        "peers": list(route.peers),
        "communities": [community_text(c) for c in route.communities],
        "largeCommunities": [f"{a}:{b}:{c}" for a, b, c in route.large_communities],
        "localPref": route.local_pref,
        "services": list(route.services),
        # RFC 10005 weighted ECMP: the node's weight (link bandwidth / unit), null when unweighted
        "weight": route_weight(route),
        "extendedCommunities": [format_bandwidth(c) for c in route.extended_communities],
    }


def l2_document(own: L2Ownership) -> dict[str, Any]:
    return {
        "ip": own.ip,
        "interfaces": list(own.interfaces),
        "owner": own.owner,
        "candidates": list(own.candidates),
        "services": list(own.services),
    }


def nat_document(rule: NatRule) -> dict[str, Any]:
    return {
        "service": rule.service,
        "vip": rule.vip,
        "port": rule.port,
        "protocol": rule.protocol,
        "trafficPolicy": rule.traffic_policy,
        "sourceRanges": list(rule.source_ranges),
        "backends": [
            {"ip": b.ip, "port": b.port, "node": b.node, "local": b.local} for b in rule.backends
        ],
    }


def node_document(plan: NodePlan) -> dict[str, Any]:
    return {
        "bgp": [route_document(r) for r in plan.bgp],
        "l2": [l2_document(o) for o in plan.l2],
        "nat": [nat_document(n) for n in plan.nat],
        "localVips": list(plan.local_vips),
    }


def assignment_document(a: Assignment) -> dict[str, Any]:
    return {
        "ips": list(a.ips),
        "pool": a.pool,
        "reason": a.reason.value,
        "message": a.message,
        "ok": a.ok,
        "previous": list(a.previous),
    }


def plan_document(result: AllocationResult, plans: Mapping[str, NodePlan]) -> dict[str, Any]:
    """``{"services": {...}, "nodes": {...}, "released": [...]}`` (see docs/plan-json.md)."""
    return {
        "version": SCHEMA_VERSION,
        "services": {k: assignment_document(a) for k, a in result.assignments.items()},
        "released": [{"service": a.service, "ips": list(a.previous)} for a in result.released],
        "pools": {
            name: {"used": used, "total": total}
            for name, (used, total) in sorted(result.pool_usage.items())
        },
        "nodes": {name: node_document(p) for name, p in sorted(plans.items())},
    }


def _compact_encoder() -> Callable[[object], str]:
    """``json.JSONEncoder(separators=(", ", ": ")).encode``, the same text, without the set-up
    that method repeats on every call (it builds the C encoder again each time: half the cost of
    encoding one NAT rule, and a 10,000-service plan encodes ~70,000 small values). The C
    encoder is made once here with the arguments ``JSONEncoder.iterencode`` passes it (no
    circular-reference markers: the plan's values are trees)."""
    encoder = json.JSONEncoder(separators=(", ", ": "), ensure_ascii=True)
    make = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed
    if make is None:  # pragma: no cover - CPython without its _json accelerator
        return encoder.encode
    chunks = make(None, encoder.default, json.encoder.encode_basestring_ascii, None,
                  encoder.key_separator, encoder.item_separator, False, False, True)

    def encode(value: object) -> str:
        return "".join(chunks(value, 0))

    return encode


_COMPACT = _compact_encoder()


def _entries(indent: str, items: Iterable[tuple[str | None, str]], opening: str,
             closing: str) -> bytes:
    """``opening``, one already-encoded entry a line (``"key": value`` when keyed), ``closing``."""
    texts = [f"{_COMPACT(key)}: {text}" if key is not None else text for key, text in items]
    if not texts:
        return (opening + closing).encode()
    return (f"{opening}\n{indent}" + f",\n{indent}".join(texts)
            + f"\n{indent[:-2]}{closing}").encode()


_STRING = json.encoder.encode_basestring_ascii


def _nat_text(rule: NatRule) -> str:
    """``_COMPACT(nat_document(rule))`` -- the same text (tests/foundation/test_plan_json.py),
    put together from its fields' JSON: a 10,000-service plan has ~40,000 distinct rules, and
    building the dictionaries to encode them cost as much as encoding them."""
    ranges = ", ".join(map(_STRING, rule.source_ranges))
    backends = ", ".join(
        f'{{"ip": {_STRING(b.ip)}, "port": {b.port:d}, '
        f'"node": {"null" if b.node is None else _STRING(b.node)}, '
        f'"local": {"true" if b.local else "false"}}}'
        for b in rule.backends
    )
    return (f'{{"service": {_STRING(rule.service)}, "vip": {_STRING(rule.vip)}, '
            f'"port": {rule.port:d}, "protocol": {_STRING(rule.protocol)}, '
            f'"trafficPolicy": {_STRING(rule.traffic_policy)}, "sourceRanges": [{ranges}], '
            f'"backends": [{backends}]}}')


def plan_json_chunks(result: AllocationResult, plans: Mapping[str, NodePlan]) -> Iterator[str]:
    """:func:`plan_json_bytes` as text."""
    return (chunk.decode("ascii") for chunk in plan_json_bytes(result, plans))


#: what separates two entries of a node's list (one a line), and what opens and closes the list
_NEXT, _OPEN, _CLOSE = b",\n        ", b"[\n        ", b"\n      ]"
_CUT = len(_NEXT)

#: a piece of the document: bytes, or a view of a part of bytes (a buffer either way)
Piece = bytes | memoryview


def plan_json_bytes(result: AllocationResult, plans: Mapping[str, NodePlan]) -> Iterator[bytes]:
    """:func:`plan_document` as JSON (ASCII: non-ASCII text is escaped), in pieces to write one
    after the other: bytes, so that writing 400 MB does not copy it once more to encode it
    (:func:`plan_json_pieces` joined a group at a time)."""
    return (b"".join(group) for group in plan_json_pieces(result, plans))


def plan_json_pieces(result: AllocationResult,
                     plans: Mapping[str, NodePlan]) -> Iterator[Sequence[Piece]]:
    """:func:`plan_document` as JSON, as groups of buffers that, written one after the other
    (``os.writev``), are the document: most of it is never joined in memory.

    The same document (``json.loads`` of the joined text equals ``plan_document``), laid out
    for a 10,000-service plan: the structure indented, each route, L2 duty, NAT rule and
    service on one line. Every entry is encoded once with the C encoder and reused where
    several nodes' plans share the value (an L2 duty is in every node's plan): a node's list
    is then the entries' texts in order, each already followed by the separator (the last one
    a view without it), where an indented ``json.dumps`` of the whole would run the
    pure-Python encoder over every copy, and a join would copy the ~440 MB once more.
    """
    #: each entry's text and the separator after it, by the entry's identity (every value
    #: stays alive in ``plans`` meanwhile, so no id is reused)
    cache: dict[int, bytes] = {}
    # a section's entries by identity: equal keys are the same values in the same order
    ordered = sorted(plans.items())
    keys = [(tuple(map(id, p.bgp)), tuple(map(id, p.l2)), tuple(map(id, p.nat)))
            for _, p in ordered]
    # the pieces of a list several nodes hold alike (their L2 duties, often their routes),
    # made once; kept until the last node holding it is written
    uses: dict[tuple[int, ...], int] = {}
    for node_keys in keys:
        for key in node_keys:
            uses[key] = uses.get(key, 0) + 1
    made: dict[tuple[int, ...], list[Piece]] = {}
    vips_text: dict[int, bytes] = {}

    def pieces(values: Sequence[Any], key: tuple[int, ...],
               text_of: Callable[[Any], str]) -> list[Piece]:
        """The values as one indented JSON list, each value's text made once."""
        out = made.get(key)
        if out is None:
            if not key:
                out = [b"[]"]
            else:
                texts: list[bytes | None] = list(map(cache.get, key))
                # the entries not met before, found by the list's own search (a loop in C:
                # a node's list is mostly entries of the nodes before it)
                at = -1
                with contextlib.suppress(ValueError):  # no None left
                    while True:
                        at = texts.index(None, at + 1)
                        ident = key[at]
                        text = cache.get(ident)  # (an entry twice in one list)
                        if text is None:
                            text = cache[ident] = text_of(values[at]).encode() + _NEXT
                        texts[at] = text
                # in place, not copied: each copy of a list of a million references costs
                # a million reference-count updates scattered over memory
                filled = cast(list[Piece], texts)  # none is None now
                last = filled[-1]
                filled[-1] = memoryview(last)[:len(last) - _CUT]
                filled.insert(0, _OPEN)
                filled.append(_CLOSE)
                out = filled
            if uses[key] > 1:
                made[key] = out
        left = uses[key] = uses[key] - 1
        if not left:
            made.pop(key, None)
        return out

    def route_text(route: BGPRoute) -> str:
        return _COMPACT(route_document(route))

    def l2_text(own: L2Ownership) -> str:
        return _COMPACT(l2_document(own))

    yield (f'{{\n  "version": {SCHEMA_VERSION},\n  "services": '.encode(),
           _entries("    ", ((k, _COMPACT(assignment_document(a)))
                             for k, a in result.assignments.items()), "{", "}"),
           b',\n  "released": ',
           _entries("    ", ((None, _COMPACT({"service": a.service, "ips": list(a.previous)}))
                             for a in result.released), "[", "]"),
           b',\n  "pools": ',
           _entries("    ", ((name, _COMPACT({"used": used, "total": total}))
                             for name, (used, total) in sorted(result.pool_usage.items())),
                    "{", "}"),
           b',\n  "nodes": {')
    for n, ((name, plan), (bgp, l2, nat)) in enumerate(zip(ordered, keys, strict=True)):
        vips = vips_text.get(id(plan.local_vips))
        if vips is None:  # the planner hands nodes that accept every VIP one shared tuple
            vips = vips_text[id(plan.local_vips)] = _COMPACT(list(plan.local_vips)).encode()
        # a node's lists are groups of their own (a group is written as it is, not copied)
        yield (f'{"," if n else ""}\n    {_COMPACT(name)}: {{\n      "bgp": '.encode(),)
        yield pieces(plan.bgp, bgp, route_text)
        yield (b',\n      "l2": ',)
        yield pieces(plan.l2, l2, l2_text)
        yield (b',\n      "nat": ',)
        yield pieces(plan.nat, nat, _nat_text)
        yield (b',\n      "localVips": ' + vips + b"\n    }",)
    yield (b"\n  }\n}\n" if plans else b"}\n}\n",)


def _route_lines(plan: NodePlan | None) -> set[str]:
    if plan is None:
        return set()
    return {f"{r.prefix} -> {','.join(r.peers)}" for r in plan.bgp}


def _l2_lines(plan: NodePlan | None) -> set[str]:
    if plan is None:
        return set()
    return {o.ip for o in plan.l2 if o.owner == plan.node}


def _weights(plan: NodePlan | None) -> Mapping[str, float]:
    return {} if plan is None else weights_by_prefix(plan)


def _weight_changes(old: NodePlan | None, new: NodePlan | None) -> list[dict[str, Any]]:
    """Weighted ECMP: the routes whose weight (RFC 10005 link bandwidth) changes."""
    before, after = _weights(old), _weights(new)
    return [
        {"prefix": p, "before": before.get(p), "after": after.get(p)}
        for p in sorted(set(before) | set(after))
        if before.get(p) != after.get(p)
    ]


def plan_diff(
    old: AllocationResult,
    old_plans: Mapping[str, NodePlan],
    new: AllocationResult,
    new_plans: Mapping[str, NodePlan],
) -> dict[str, Any]:
    """What moving from the old plan to the new one changes (only what changes is listed)."""
    services: dict[str, Any] = {}
    for key in sorted(set(old.assignments) | set(new.assignments)):
        before = old.assignments[key].ips if key in old.assignments else ()
        after_a = new.assignments.get(key)
        after = after_a.ips if after_a else ()
        if before != after:
            services[key] = {
                "before": list(before),
                "after": list(after),
                "reason": after_a.reason.value if after_a else "Deleted",
                "message": after_a.message if after_a else "service deleted",
            }
    nodes: dict[str, Any] = {}
    for name in sorted(set(old_plans) | set(new_plans)):
        o, n = old_plans.get(name), new_plans.get(name)
        change = {
            "routesAdded": sorted(_route_lines(n) - _route_lines(o)),
            "routesWithdrawn": sorted(_route_lines(o) - _route_lines(n)),
            "l2Gained": sorted(_l2_lines(n) - _l2_lines(o)),
            "l2Lost": sorted(_l2_lines(o) - _l2_lines(n)),
            "weightChanges": _weight_changes(o, n),
        }
        if any(change.values()):
            nodes[name] = change
    return {"version": SCHEMA_VERSION, "services": services, "nodes": nodes}
