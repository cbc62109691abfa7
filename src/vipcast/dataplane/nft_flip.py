"""A change of the backends down, as a small nftables patch (pure): the health-flip fast path.

A full render of 10,000 services and its diff against the remembered table cost hundreds of
milliseconds; a health flip changes the backends of a few VIP ports. :class:`FlipIndex` is built
once per set of NAT rules (with the backends down at that time) and answers, for a new set of
backends down, the :class:`~vipcast.dataplane.nft_patch.TablePatch` that turns the table
rendered for the old set into the table :func:`~vipcast.dataplane.nft_render.render` would give
for the new one. In the element layout that is: the affected VIP ports' verdict-map elements
(a new backend count names another picker, no backend left removes the element), their
``addr``/``port`` slot elements, ``remote`` set elements whose last user went (or first came),
and a ``pick``/``slot`` chain (with its maps) when a backend count comes into use or goes out of
it. The index then holds the new set. ``tests/dataplane`` checks the patched kernel table
against a full render.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from vipcast.core.desired import Backend, NatRule
from vipcast.dataplane.nft_elements import PROTO_NAME, IpFamily, canon_ip, family_of
from vipcast.dataplane.nft_patch import TablePatch
from vipcast.dataplane.nft_render import (
    BackendKey,
    Piece,
    RenderCache,
    down_set,
    usable_backends,
)
from vipcast.dataplane.nft_table import pick_objects, slot_objects
from vipcast.spec.documents import JSON

Elem = tuple[str, str, int]
#: per family: (slots in use, backend counts with a picker chain)
Shape = dict[IpFamily, tuple[int, frozenset[int]]]


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
        #: per family: usable backend count -> how many VIP ports have it
        self._counts: dict[IpFamily, Counter[int]] = {4: Counter(), 6: Counter()}
        is_down = down_set(down)
        for rule in sorted(rules, key=cache.order):
            key = (canon_ip(rule.vip), PROTO_NAME[rule.protocol], rule.port)
            if key in seen:
                continue  # a later rule of the same VIP port is never rendered
            seen.add(key)
            for b in rule.backends:
                self._by_backend.setdefault((canon_ip(b.ip), b.port), []).append(rule)
            usable = usable_backends(rule, is_down)
            self._count_remote(rule, usable, +1)
            if usable:
                self._counts[family_of(key[0])][len(usable)] += 1

    def _count_remote(self, rule: NatRule, backends: Iterable[Backend], step: int
                      ) -> list[Elem]:
        """Add ``step`` to the remote elements of ``rule``; the elements that crossed zero."""
        if rule.traffic_policy != "Cluster":
            return []
        proto = PROTO_NAME[rule.protocol]
        crossed = []
        for b in backends:
            if b.local:
                continue
            elem = (canon_ip(b.ip), proto, b.port)
            before = self._remote.get(elem, 0)
            after = before + step
            if after:
                self._remote[elem] = after
            else:
                del self._remote[elem]
            if (before == 0) != (after == 0):
                crossed.append(elem)
        return crossed

    def _shape(self) -> Shape:
        out: Shape = {}
        for fam, counts in self._counts.items():
            used = [n for n, services in counts.items() if services]
            out[fam] = (max(used, default=0), frozenset(n for n in used if n > 1))
        return out

    def commands(self, down: frozenset[BackendKey]) -> list[JSON]:
        """The commands from the table rendered for :attr:`down` to the one for ``down``;
        the index holds ``down`` afterwards."""
        changed = {(canon_ip(ip), port) for ip, port in down ^ self.down}
        rules: dict[int, NatRule] = {}
        for key in changed:
            for rule in self._by_backend.get(key, ()):
                rules[id(rule)] = rule
        old_down, new_down = down_set(self.down), down_set(down)
        old_shape = self._shape()
        patch = TablePatch()
        remote_gone: dict[str, list[Any]] = {}
        remote_new: dict[str, list[Any]] = {}
        for rule in sorted(rules.values(), key=self._cache.order):
            before = usable_backends(rule, old_down)
            after = usable_backends(rule, new_down)
            if before == after:
                continue
            fam = family_of(rule.vip)
            old = self._cache.piece(rule, before) if before else None
            new = self._cache.piece(rule, after) if after else None
            _elements(patch, fam, old, new)
            if before:
                self._counts[fam][len(before)] -= 1
            if after:
                self._counts[fam][len(after)] += 1
            name = f"remote{fam}"
            for elem in self._count_remote(rule, before, -1):
                remote_gone.setdefault(name, []).append({"concat": list(elem)})
            for elem in self._count_remote(rule, after, +1):
                concat = {"concat": list(elem)}
                removed = remote_gone.get(name, [])
                if concat in removed:
                    removed.remove(concat)  # gone and back in one flip: no change
                else:
                    remote_new.setdefault(name, []).append(concat)
        for name, elems in remote_gone.items():
            if elems:
                patch.delete[name] = elems
        patch.add.update(remote_new)
        _structure(patch, old_shape, self._shape())
        self.down = down
        return patch.commands()


def _elements(patch: TablePatch, fam: IpFamily, old: Piece | None, new: Piece | None) -> None:
    """The element changes of one VIP port going from ``old`` to ``new`` (None: not rendered)."""
    svc = f"svc{fam}"
    if old is not None and (new is None or old.verdict != new.verdict):
        patch.delete.setdefault(svc, []).append(old.key)
    if new is not None and (old is None or old.verdict != new.verdict):
        patch.add.setdefault(svc, []).append(new.verdict)
    old_slots = old.slots if old else ()
    new_slots = new.slots if new else ()
    for i in range(max(len(old_slots), len(new_slots))):
        for j, prefix in ((0, "addr"), (1, "port")):
            was = old_slots[i][j] if i < len(old_slots) else None
            now = new_slots[i][j] if i < len(new_slots) else None
            if was == now:
                continue
            name = f"{prefix}{fam}-{i}"
            if was is not None:
                patch.delete.setdefault(name, []).append(was[0])
            if now is not None:
                patch.add.setdefault(name, []).append(now)


def _structure(patch: TablePatch, old: Shape, new: Shape) -> None:
    """Chains and maps for backend counts that came into use or went out of it."""
    for fam in sorted(new):
        old_slots, old_picks = old[fam]
        new_slots, new_picks = new[fam]
        for i in range(old_slots, new_slots):
            addr_map, port_map, chain, rule = slot_objects(fam, i)
            patch.new_maps += [addr_map, port_map]
            patch.new_chains.append(chain)
            patch.rules.append(rule)
        for n in sorted(new_picks - old_picks):
            chain, rule = pick_objects(fam, n)
            patch.new_chains.append(chain)
            patch.rules.append(rule)
        patch.gone_chains += [f"pick{fam}-{n}" for n in sorted(old_picks - new_picks)]
        for i in range(new_slots, old_slots):
            patch.gone_chains.append(f"slot{fam}-{i}")
            patch.gone_maps += [f"addr{fam}-{i}", f"port{fam}-{i}"]
    for name in patch.gone_maps:
        patch.delete.pop(name, None)  # the map goes with its elements
