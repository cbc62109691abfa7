"""A change of the ``inet vipcast`` table as one small transaction, without re-creating it (pure).

Two producers build a :class:`TablePatch`: :func:`patch_commands` from two whole canonical tables
(any plan change), and :class:`~vipcast.dataplane.nft_flip.FlipIndex` from the few VIP ports a
health flip touches. Only what the render lets come and go may differ: the ``pick``/``slot``
chains (with their rules), the ``addr``/``port`` maps, and the elements of any set or map. A
difference in the skeleton (the table, the fixed sets and maps, the base chains and their rules)
needs a whole replace, and :func:`patch_commands` answers None.

Order inside the one batch: new maps, new chains, their rules (a slot rule names its maps, a
pick rule names slot chains), element deletions, element additions (a verdict may now name a new
chain), then the chains nothing points to any more (flushed, then deleted) and last their maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vipcast.dataplane.nft_table import DYNAMIC_CHAINS, DYNAMIC_MAPS, FAMILY, TABLE
from vipcast.spec.documents import JSON

_BASE = {"family": FAMILY, "table": TABLE}


@dataclass
class TablePatch:
    """What to change, by kind; :meth:`commands` orders it into one batch."""

    #: map objects to create (definitions only: their elements go in :attr:`add`)
    new_maps: list[JSON] = field(default_factory=list)
    #: chain objects to create
    new_chains: list[JSON] = field(default_factory=list)
    #: chains whose rules are replaced (flushed first)
    flush: list[str] = field(default_factory=list)
    #: rule objects (``{"rule": ...}``) to add, of new chains or flushed ones
    rules: list[JSON] = field(default_factory=list)
    #: set/map name -> element keys to delete
    delete: dict[str, list[Any]] = field(default_factory=dict)
    #: set/map name -> elements to add
    add: dict[str, list[Any]] = field(default_factory=dict)
    gone_chains: list[str] = field(default_factory=list)
    gone_maps: list[str] = field(default_factory=list)

    def commands(self) -> list[JSON]:
        cmds: list[JSON] = [{"add": m} for m in self.new_maps]
        cmds += [{"add": c} for c in self.new_chains]
        cmds += [{"flush": {"chain": {**_BASE, "name": n}}} for n in self.flush]
        cmds += [{"add": r} for r in self.rules]
        cmds += [{"delete": {"element": {**_BASE, "name": n, "elem": e}}}
                 for n, e in sorted(self.delete.items()) if e]
        cmds += [{"add": {"element": {**_BASE, "name": n, "elem": e}}}
                 for n, e in sorted(self.add.items()) if e]
        cmds += [{"flush": {"chain": {**_BASE, "name": n}}} for n in self.gone_chains]
        cmds += [{"delete": {"chain": {**_BASE, "name": n}}} for n in self.gone_chains]
        cmds += [{"delete": {"map": {**_BASE, "name": n}}} for n in self.gone_maps]
        return cmds


def patch_commands(current: tuple[JSON, ...], want: tuple[JSON, ...]) -> list[JSON] | None:
    """Commands turning the canonical table ``current`` into ``want`` in place, or None when the
    skeleton differs (a whole replace is needed)."""
    cur_sets, cur_chains, cur_rules, cur_other = _split(current)
    new_sets, new_chains, new_rules, new_other = _split(want)
    if cur_other != new_other:
        return None
    patch = TablePatch()
    for name in sorted(cur_sets.keys() | new_sets.keys()):
        old, new = cur_sets.get(name), new_sets.get(name)
        if old is None or new is None:
            if not name.startswith(DYNAMIC_MAPS):
                return None
            if old is not None:
                patch.gone_maps.append(name)
            elif new is not None:
                kind, definition, elems = new
                patch.new_maps.append({kind: definition})
                if elems:
                    patch.add[name] = list(elems)
            continue
        (kind, definition, elems), (old_kind, old_definition, old_elems) = new, old
        if (kind, definition) != (old_kind, old_definition):
            return None
        _element_diff(patch, name, kind == "map", old_elems, elems)
    for name in sorted(new_chains.keys() - cur_chains.keys()):
        patch.new_chains.append({"chain": new_chains[name]})
        patch.rules += [{"rule": r} for r in new_rules.get(name, [])]
    for name in sorted(new_chains.keys() & cur_chains.keys()):
        if new_chains[name] != cur_chains[name]:
            return None
        if new_rules.get(name, []) != cur_rules.get(name, []):
            patch.flush.append(name)
            patch.rules += [{"rule": r} for r in new_rules.get(name, [])]
    patch.gone_chains = sorted(cur_chains.keys() - new_chains.keys())
    return patch.commands()


def _element_diff(patch: TablePatch, name: str, is_map: bool, old_elems: list[Any],
                  new_elems: list[Any]) -> None:
    if old_elems == new_elems:
        return  # most maps of a plan change (cheap: unchanged elements are the same objects)
    old = {_elem_id(e, is_map): e for e in old_elems}
    new = {_elem_id(e, is_map): e for e in new_elems}
    gone = [old[k] for k in sorted(old.keys() - new.keys())]
    # a map element whose data changed: delete the key, add it back with the new data
    moved = [k for k in sorted(old.keys() & new.keys()) if old[k] != new[k]]
    gone += [old[k] for k in moved]
    fresh = [new[k] for k in sorted(new.keys() - old.keys())] + [new[k] for k in moved]
    if gone:
        patch.delete[name] = [e[0] if is_map else e for e in gone]
    if fresh:
        patch.add[name] = fresh


_SetInfo = tuple[str, JSON, list[Any]]


def _split(
    objects: tuple[JSON, ...],
) -> tuple[dict[str, _SetInfo], dict[str, JSON], dict[str, list[JSON]], list[JSON]]:
    sets: dict[str, _SetInfo] = {}
    chains: dict[str, JSON] = {}
    rules: dict[str, list[JSON]] = {}
    other: list[JSON] = []
    for obj in objects:
        ((kind, body),) = obj.items()
        if kind in ("set", "map"):
            definition = {k: v for k, v in body.items() if k != "elem"}
            sets[str(body["name"])] = (kind, definition, list(body.get("elem", [])))
        elif kind == "chain" and str(body.get("name", "")).startswith(DYNAMIC_CHAINS):
            chains[str(body["name"])] = body
        elif kind == "rule" and str(body.get("chain", "")).startswith(DYNAMIC_CHAINS):
            rules.setdefault(str(body["chain"]), []).append(body)
        else:
            other.append(obj)
    return sets, chains, rules, other


def _elem_id(elem: Any, is_map: bool) -> str:
    return repr(elem[0] if is_map else elem)
