"""Apply a rendered ``inet vipcast`` table through libnftables, atomically and only if needed.

* One transaction per apply: ``add table; delete table; add table; add ...`` in a single
  libnftables batch, so the kernel either swaps in the whole new table or, if anything in the
  batch is rejected, keeps the previous one untouched. Established connections keep their NAT
  bindings (conntrack), so a swap does not break them.
* Before applying, the table is read back (``list table inet vipcast`` as JSON) and compared
  with the render in canonical form; when they are equal, no transaction is sent. That makes a
  restarted agent adopt the table it left behind without disturbing it.
* No-op path: :class:`NftTable` remembers what it last applied or read back. Re-applying the
  same render costs one comparison (no read-back, no transaction); a change is patched against
  the remembered table without reading the kernel first. The remembered table is trusted for
  ``readback_every`` seconds; after that (or with ``check=True``) the next apply reads the
  kernel again, so outside edits (someone ran ``nft``) are found and undone. A patch the kernel
  refuses (its table was not what we remembered) falls back to a read-back and a full replace.
* The table is only removed by :meth:`NftTable.cleanup` (``vipcast dataplane cleanup``).

libnftables is blocking; call these methods from a worker thread in asyncio code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import nftables

from vipcast.dataplane.netns_switch import inside
from vipcast.dataplane.nft_patch import patch_commands
from vipcast.dataplane.nft_render import Rendered
from vipcast.dataplane.nft_table import FAMILY, TABLE
from vipcast.spec.documents import JSON

ObjectKey = tuple[str, ...]


@dataclass(frozen=True)
class TableDiff:
    """What differs between the kernel's table and a render, by object."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        if self.empty:
            return "no change"
        return f"+{len(self.added)} -{len(self.removed)} ~{len(self.changed)}"


ApplyMode = Literal["none", "patch", "replace"]


@dataclass(frozen=True)
class Readback:
    """The kernel's table as :meth:`NftTable.read` gave it (None: no table), read at ``at``
    (monotonic): handed to :meth:`NftTable.apply` when the read was taken beforehand."""

    table: tuple[JSON, ...] | None
    at: float


@dataclass(frozen=True)
class ApplyResult:
    """The outcome of one apply: whether a transaction ran, and whether the kernel took it.

    ``mode`` says which transaction: ``none`` (read-back equalled the render), ``patch`` (only
    set/map elements and the pick/slot objects changed: a small batch touching just those,
    :mod:`vipcast.dataplane.nft_patch`) or
    ``replace`` (the whole table, re-created in one batch).
    """

    ok: bool
    changed: bool
    diff: TableDiff = field(default_factory=TableDiff)
    error: str = ""
    seconds: float = 0.0
    mode: ApplyMode = "none"
    #: the kernel's table was read back for this apply (not taken from the remembered one)
    read_back: bool = False


class NftTable:
    """The ``inet vipcast`` table in one network namespace (``None``: the current one)."""

    def __init__(self, netns: str | None = None, *, readback_every: float = 30.0) -> None:
        self._netns = netns
        self.readback_every = readback_every
        #: canonical form of the table as last applied or read back; None: unknown
        self._known: tuple[JSON, ...] | None = None
        #: the render objects of the last successful apply (the cheap equality check)
        self._known_objects: tuple[JSON, ...] | None = None
        #: monotonic time of the last read-back
        self._read_at = float("-inf")

    # -- kernel I/O ---------------------------------------------------------------------------

    def _run(self, doc: JSON) -> tuple[int, Any, str]:
        with inside(self._netns):
            ctx = nftables.Nftables()
            ctx.set_json_output(True)
            rc, out, err = ctx.json_cmd(doc)
        return int(rc), out, str(err)

    def read(self) -> tuple[JSON, ...] | None:
        """The table's objects in canonical form, or None when the table does not exist."""
        rc, out, _err = self._run(
            {"nftables": [{"list": {"table": {"family": FAMILY, "name": TABLE}}}]}
        )
        if rc != 0 or not isinstance(out, dict):
            return None
        return canonical(out.get("nftables", []))

    def due_for_readback(self, now: float | None = None) -> bool:
        """Whether the next apply will read the kernel's table (not trust the remembered one)."""
        now = time.monotonic() if now is None else now
        return self._known is None or now - self._read_at >= self.readback_every

    def forget(self) -> None:
        """Distrust the remembered table: the next apply reads the kernel."""
        self._known = self._known_objects = None

    def apply(
        self, rendered: Rendered, *, force: bool = False, check: bool = False,
        readback: Readback | None = None,
    ) -> ApplyResult:
        """Make the kernel's table equal to ``rendered``; no transaction when it already is.

        ``check`` reads the kernel back even when the remembered table is still trusted;
        ``readback`` is such a read taken beforehand (the caller vouches that nothing changed
        the table since), used instead of reading again.
        """
        start = time.monotonic()
        read_back = force or check or readback is not None or self.due_for_readback(start)
        if not read_back and rendered.objects == self._known_objects:
            return ApplyResult(ok=True, changed=False, seconds=time.monotonic() - start)
        want = canonical(rendered.objects)
        if readback is not None:
            current, self._read_at = readback.table, readback.at
        elif read_back:
            current = self.read()
            self._read_at = time.monotonic()
        else:
            current = self._known
        diff = table_diff(current or (), want)
        if current is not None and diff.empty and not force:
            self._remember(want, rendered)
            return ApplyResult(ok=True, changed=False, diff=diff,
                               seconds=time.monotonic() - start, read_back=read_back)
        patch = None if current is None or force else patch_commands(current, want)
        if patch is not None:
            rc, _out, err = self._run({"nftables": patch})
            if rc == 0:
                self._remember(want, rendered)
                return ApplyResult(ok=True, changed=True, diff=diff,
                                   seconds=time.monotonic() - start, mode="patch",
                                   read_back=read_back)
            # a failed batch changed nothing; the kernel may not hold what we remembered
            if not read_back:
                return self.apply(rendered, check=True)
        rc, _out, err = self._run(rendered.document())
        if rc == 0:
            self._remember(want, rendered)
        else:
            self.forget()
        return ApplyResult(
            ok=rc == 0,
            changed=rc == 0,
            diff=diff,
            error=err.strip() if rc != 0 else "",
            seconds=time.monotonic() - start,
            mode="replace",
            read_back=read_back,
        )

    def _remember(self, want: tuple[JSON, ...], rendered: Rendered) -> None:
        self._known, self._known_objects = want, rendered.objects

    def patch(self, commands: list[JSON]) -> ApplyResult:
        """Send ``commands`` (a patch of our table) as one transaction; the remembered table is
        then out of date until :meth:`adopt` (or a read-back) says what the kernel holds."""
        start = time.monotonic()
        if not commands:
            return ApplyResult(ok=True, changed=False, mode="patch")
        rc, _out, err = self._run({"nftables": commands})
        if rc != 0:
            self.forget()
        return ApplyResult(ok=rc == 0, changed=rc == 0, error=err.strip() if rc else "",
                           seconds=time.monotonic() - start, mode="patch")

    def adopt(self, rendered: Rendered) -> None:
        """The kernel holds ``rendered`` (a :meth:`patch` made it so): remember it."""
        if self._known is not None:
            self._remember(canonical(rendered.objects), rendered)

    def run_document(self, doc: JSON) -> ApplyResult:
        """Send an arbitrary document as one transaction (tests use it to send broken ones)."""
        start = time.monotonic()
        self.forget()
        rc, _out, err = self._run(doc)
        return ApplyResult(ok=rc == 0, changed=rc == 0, error=err.strip(),
                           seconds=time.monotonic() - start)

    def cleanup(self) -> bool:
        """Remove the table; True if it existed."""
        self.forget()
        if self.read() is None:
            return False
        rc, _out, _err = self._run(
            {"nftables": [{"delete": {"table": {"family": FAMILY, "name": TABLE}}}]}
        )
        return rc == 0


# ---------------------------------------------------------------------------------------------
# canonical form and diff (pure)

_KIND_RANK = {"table": 0, "map": 1, "set": 1, "chain": 2, "rule": 3}


def canonical(objects: Any) -> tuple[JSON, ...]:
    """Objects of our table without metainfo or handles, elements sorted, in a stable order."""
    out: list[tuple[tuple[Any, ...], JSON]] = []
    rule_index: dict[str, int] = {}
    for obj in objects:
        if not isinstance(obj, dict) or len(obj) != 1:
            continue
        ((kind, body),) = obj.items()
        if kind not in _KIND_RANK or not isinstance(body, dict):
            continue
        clean = {k: v for k, v in body.items() if k != "handle"}
        if "elem" in clean:
            clean["elem"] = sorted(clean["elem"], key=_elem_order)
        if kind == "rule":
            chain = str(clean.get("chain", ""))
            idx = rule_index.get(chain, 0)
            rule_index[chain] = idx + 1
            sort_key: tuple[Any, ...] = (_KIND_RANK[kind], chain, idx)
        else:
            sort_key = (_KIND_RANK[kind], str(clean.get("name", "")), 0)
        out.append((sort_key, {kind: clean}))
    out.sort(key=lambda item: item[0])
    return tuple(obj for _key, obj in out)


def _elem_order(elem: Any) -> str:
    """A set element's place in the canonical order; a map element's by its key alone (keys
    are unique in a map, and the key's text is half the element's)."""
    return repr(elem[0] if isinstance(elem, list) else elem)


def object_key(obj: JSON) -> str:
    """A readable identity for one canonical object (``chain prerouting``, ``rule output#0``)."""
    ((kind, body),) = obj.items()
    if kind == "rule":
        return f"rule {body.get('chain')}"
    return f"{kind} {body.get('name')}"


def table_diff(current: tuple[JSON, ...], want: tuple[JSON, ...]) -> TableDiff:
    """Objects added, removed or changed going from ``current`` to ``want``."""
    cur = _keyed(current)
    new = _keyed(want)
    added = tuple(sorted(k for k in new if k not in cur))
    removed = tuple(sorted(k for k in cur if k not in new))
    changed = tuple(sorted(k for k in new if k in cur and cur[k] != new[k]))
    return TableDiff(added, removed, changed)


def _keyed(objects: tuple[JSON, ...]) -> dict[str, JSON]:
    keyed: dict[str, JSON] = {}
    counts: dict[str, int] = {}
    for obj in objects:
        base = object_key(obj)
        n = counts.get(base, 0)
        counts[base] = n + 1
        keyed[f"{base}#{n}" if base.startswith("rule ") else base] = obj
    return keyed
