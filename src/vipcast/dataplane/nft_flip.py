"""A change of the backends down, as a small nftables patch (pure): the health-flip fast path.

A full render of 10,000 services and its diff against the remembered table cost seconds on a
busy machine; a health flip changes the backends of a few VIP ports. :class:`FlipIndex` is
built once per set of NAT rules (with the backends down at that time) and answers, for a new
set of backends down, the commands that turn the table rendered for the old set into the table
:func:`~vipcast.dataplane.nft_render.render` would give for the new one: the affected service
chains' DNAT rules (flush and re-add), verdict-map elements of VIP ports that gained their
first or lost their last usable backend, and ``remote`` set elements whose last user went (or
first came). The index then holds the new set. ``tests/dataplane`` checks the patched kernel
table against a full render.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from vipcast.core.desired import Backend, NatRule
from vipcast.dataplane.nft_render import (
    _PROTO_NAME,
    FAMILY,
    TABLE,
    BackendKey,
    RenderCache,
    _canon_ip,
    _family,
    down_set,
    usable_backends,
)
from vipcast.spec.documents import JSON

Elem = tuple[str, str, int]


class FlipIndex:
    """What a change of the backends down touches, for one set of NAT rules."""

    def __init__(self, rules: Sequence[NatRule], down: frozenset[BackendKey],
                 cache: RenderCache) -> None:
        self.rules = rules
        self.down = down
        self._cache = cache
        seen: set[Elem] = set()
        #: canonical (ip, port) of a backend -> the rendered rules that list it
        self._by_backend: dict[BackendKey, list[NatRule]] = {}
        #: ``remote`` set element -> how many rendered rules put it there
        self._remote: dict[Elem, int] = {}
        is_down = down_set(down)
        for rule in sorted(rules, key=cache.order):
            key = (_canon_ip(rule.vip), _PROTO_NAME[rule.protocol], rule.port)
            if key in seen:
                continue  # a later rule of the same VIP port is never rendered
            seen.add(key)
            for b in rule.backends:
                self._by_backend.setdefault((_canon_ip(b.ip), b.port), []).append(rule)
            self._count(rule, usable_backends(rule, is_down), +1)

    def _count(self, rule: NatRule, backends: Iterable[Backend], step: int) -> list[Elem]:
        """Add ``step`` to the remote elements of ``rule``; the elements that crossed zero."""
        if rule.traffic_policy != "Cluster":
            return []
        proto = _PROTO_NAME[rule.protocol]
        crossed = []
        for b in backends:
            if b.local:
                continue
            elem = (_canon_ip(b.ip), proto, b.port)
            before = self._remote.get(elem, 0)
            after = before + step
            if after:
                self._remote[elem] = after
            else:
                del self._remote[elem]
            if (before == 0) != (after == 0):
                crossed.append(elem)
        return crossed

    def commands(self, down: frozenset[BackendKey]) -> list[JSON]:
        """The commands from the table rendered for :attr:`down` to the one for ``down``;
        the index holds ``down`` afterwards."""
        changed = {(_canon_ip(ip), port) for ip, port in down ^ self.down}
        rules: dict[int, NatRule] = {}
        for key in changed:
            for rule in self._by_backend.get(key, ()):
                rules[id(rule)] = rule
        old_down, new_down = down_set(self.down), down_set(down)
        base = {"family": FAMILY, "table": TABLE}
        new_chains: list[JSON] = []
        flushed: list[JSON] = []
        gone_elems: dict[str, list[Any]] = {}
        new_elems: dict[str, list[Any]] = {}
        gone_chains: list[JSON] = []
        for rule in sorted(rules.values(), key=self._cache.order):
            before = usable_backends(rule, old_down)
            after = usable_backends(rule, new_down)
            if before == after:
                continue
            vip = _canon_ip(rule.vip)
            fam = _family(vip)
            proto = _PROTO_NAME[rule.protocol]
            verdict_key = {"concat": [vip, proto, rule.port]}
            if after:
                chain, chain_obj, dnat = self._cache.pieces(rule, after, fam, proto, vip)
                if before:
                    flushed.append({"flush": {"chain": {**base, "name": chain}}})
                    flushed.append({"add": dnat})
                else:
                    new_chains.append({"add": chain_obj})
                    new_chains.append({"add": dnat})
                    new_elems.setdefault(f"svc{fam}", []).append(
                        [verdict_key, {"goto": {"target": chain}}])
            else:
                chain = self._cache.pieces(rule, before, fam, proto, vip)[0]
                gone_elems.setdefault(f"svc{fam}", []).append(verdict_key)
                gone_chains.append({"flush": {"chain": {**base, "name": chain}}})
                gone_chains.append({"delete": {"chain": {**base, "name": chain}}})
            for elem in self._count(rule, before, -1):
                if self._remote.get(elem) is None:
                    gone_elems.setdefault(f"remote{fam}", []).append({"concat": list(elem)})
            for elem in self._count(rule, after, +1):
                removed = gone_elems.get(f"remote{fam}", [])
                concat = {"concat": list(elem)}
                if concat in removed:
                    removed.remove(concat)  # gone and back in one flip: no change
                else:
                    new_elems.setdefault(f"remote{fam}", []).append(concat)
        self.down = down
        cmds = [*new_chains, *flushed]
        cmds += [{"delete": {"element": {**base, "name": n, "elem": e}}}
                 for n, e in sorted(gone_elems.items()) if e]
        cmds += [{"add": {"element": {**base, "name": n, "elem": e}}}
                 for n, e in sorted(new_elems.items()) if e]
        cmds += gone_chains
        return cmds
