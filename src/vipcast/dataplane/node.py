"""The node's data plane as the agent sees it: ``await apply(plan)``.

:class:`NodeDataplane` keeps the last :class:`NodePlan`, renders its NAT rules without the
plan's ``down`` backends, applies the table (no transaction when nothing changed) and syncs the
local VIP routes. When only ``down`` changed (a health flip) it patches just the VIP ports the
flipped backends serve (:mod:`vipcast.dataplane.nft_flip`). The node agent hands health to it
only through the plan; a checker with the :class:`BackendHealth` shape can still be given
directly (standalone uses and tests), and :meth:`NodeDataplane.run` then re-renders on its flips.

Blocking kernel calls (libnftables, netlink) run in a worker thread.

Re-applying what is already applied (the same NAT rules, the same backends down, the same
VIPs) renders nothing and touches no kernel object: the agent can call :meth:`apply` as often as
it likes. :meth:`run` also re-checks the kernel every ``readback_every`` seconds (the table's
setting), so an outside edit of the table or of our routes is undone within that time. That
read-back of a 10,000-service table takes seconds, so it runs without the lock: a flip meanwhile
is patched at once, and a read that a change of ours may have overtaken is not used (the next
periodic check reads again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from vipcast.core.desired import NatRule, NodePlan
from vipcast.dataplane.nft import ApplyResult, NftTable, Readback
from vipcast.dataplane.nft_flip import FlipIndex
from vipcast.dataplane.nft_render import (
    RenderCache,
    Skipped,
    down_set,
    render,
    usable_backends,
)
from vipcast.dataplane.routes import LocalVips, VipChange

log = logging.getLogger(__name__)

BackendKey = tuple[str, int]


class BackendHealth(Protocol):
    """What the data plane needs from a health checker."""

    def track(self, targets: Mapping[BackendKey, tuple[str, ...]]) -> None: ...

    def down(self) -> frozenset[BackendKey]: ...

    def on_change(self, listener: Callable[[], None]) -> None: ...


@dataclass(frozen=True)
class DataplaneReport:
    """What one apply did."""

    nft: ApplyResult
    vips: VipChange = field(default_factory=VipChange)
    skipped: tuple[Skipped, ...] = ()

    @property
    def ok(self) -> bool:
        return self.nft.ok


def backend_targets(rules: tuple[NatRule, ...]) -> dict[BackendKey, tuple[str, ...]]:
    """Every ready TCP backend this node forwards to, with the services that use it.

    UDP and SCTP ports cannot be checked by a TCP connect or an HTTP GET, so their backends
    are not tracked (they count as healthy while ready).
    """
    targets: dict[BackendKey, set[str]] = {}
    for rule in rules:
        if rule.protocol != "TCP":
            continue
        for b in usable_backends(rule):
            targets.setdefault((b.ip, b.port), set()).add(rule.service)
    return {k: tuple(sorted(v)) for k, v in sorted(targets.items())}


class NodeDataplane:
    """nftables + local routes for one node, health-aware."""

    def __init__(
        self,
        nft: NftTable,
        vips: LocalVips | None = None,
        health: BackendHealth | None = None,
    ) -> None:
        self._nft = nft
        self._vips = vips
        self._health = health
        self._plan: NodePlan | None = None
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self.last: DataplaneReport | None = None
        #: what the kernel was last made to match: (NAT rules, backends down, local VIPs)
        self._applied: tuple[object, ...] | None = None
        self._render_cache = RenderCache()
        self._healthy: tuple[NodePlan, frozenset[BackendKey], frozenset[str]] | None = None
        #: the health-flip fast path's index of the applied NAT rules
        self._flips: FlipIndex | None = None
        #: (NAT rules, backends down) a flip patch left in the kernel; the remembered table
        #: is brought up to it before the next whole apply
        self._patched: tuple[tuple[NatRule, ...], frozenset[BackendKey]] | None = None
        #: bumped before every transaction of ours: a read-back taken across a bump is stale
        self._epoch = 0
        if health is not None:
            health.on_change(self._dirty.set)

    @property
    def plan(self) -> NodePlan | None:
        return self._plan

    async def apply(self, plan: NodePlan) -> None:
        """Make the kernel match ``plan`` (minus down backends); the outcome is in :attr:`last`.

        The agent's plan-consumer shape; use :meth:`apply_report` to get the report directly.
        """
        await self.apply_report(plan)

    async def apply_report(self, plan: NodePlan) -> DataplaneReport:
        """:meth:`apply`, returning what it did."""
        self._plan = plan
        if self._health is not None:
            self._health.track(backend_targets(plan.nat))
        report = await self._sync(plan)
        if not report.ok:
            log.error("nftables apply failed, previous table kept: %s", report.nft.error)
        return report

    async def refresh(self, *, check: bool = False) -> DataplaneReport | None:
        """Re-render the current plan with the current health (after a flip); ``check`` reads
        the kernel back even if nothing changed on our side."""
        if self._plan is None:
            return None
        if not check:
            return await self._sync(self._plan)
        # read the kernel without holding the lock (seconds for a big table): flips go on
        epoch, at = self._epoch, time.monotonic()
        table = await asyncio.to_thread(self._nft.read)
        return await self._sync(self._plan, check=True, readback=(epoch, Readback(table, at)))

    async def run(self) -> None:
        """Re-render whenever the health checker reports a flip, and read the kernel back every
        ``readback_every`` seconds. Runs until cancelled."""
        while True:
            timed_out = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._nft.readback_every):
                    await self._dirty.wait()
                timed_out = not self._dirty.is_set()
            self._dirty.clear()
            report = await self.refresh(check=timed_out)
            if report is not None and not report.ok:
                log.error("data plane refresh failed: %s", report.nft.error)
            elif report is not None and timed_out and report.nft.changed:
                log.warning("data plane: the kernel's table differed from ours (outside edit?), "
                            "restored (%s)", report.nft.diff.summary())

    def has_healthy_backend(self, service: str) -> bool:
        """Whether this node can serve ``service`` now (some ready, healthy, eligible backend)."""
        if self._plan is None:
            return False
        is_down = down_set(self._down())
        return any(
            usable_backends(rule, is_down)
            for rule in self._plan.nat
            if rule.service == service
        )

    def healthy_services(self) -> frozenset[str]:
        """Services with a usable backend now (memoised per plan and set of down backends:
        the announcement policy asks several times a second)."""
        if self._plan is None:
            return frozenset()
        down = self._down()
        cached = self._healthy
        if cached is not None and cached[0] is self._plan and cached[1] == down:
            return cached[2]
        is_down = down_set(down)
        healthy = frozenset(r.service for r in self._plan.nat if usable_backends(r, is_down))
        self._healthy = (self._plan, down, healthy)
        return healthy

    async def cleanup(self) -> None:
        """Remove the table and our routes (``vipcast dataplane cleanup``)."""
        async with self._lock:
            self._epoch += 1
            await asyncio.to_thread(self._nft.cleanup)
            if self._vips is not None:
                await asyncio.to_thread(self._vips.clear)

    async def _flip(self, plan: NodePlan, down: frozenset[BackendKey]
                    ) -> DataplaneReport | None:
        """Only the backends down changed since the last apply: patch just the VIP ports they
        serve (see :mod:`vipcast.dataplane.nft_flip`); None when that does not apply."""
        applied, flips, last = self._applied, self._flips, self.last
        # the periodic read-back (run()) checks the kernel; a flip does not wait for it
        if (applied is None or flips is None or last is None or applied[0] is not plan.nat
                or applied[2] != plan.local_vips or applied[1] == down):
            return None
        commands = flips.commands(down)
        self._epoch += 1
        result = await asyncio.to_thread(self._nft.patch, commands)
        if not result.ok:
            log.warning("nftables flip patch refused (%s): applying the whole table",
                        result.error)
            self._flips = None
            self._applied = None
            self._patched = None
            self._nft.forget()
            return None
        self._applied = (plan.nat, down, plan.local_vips)
        self._patched = (plan.nat, down)
        self.last = DataplaneReport(result, skipped=last.skipped)
        return self.last

    def _down(self) -> frozenset[BackendKey]:
        """The plan's ``down`` backends, and those of a health checker given directly."""
        planned = self._plan.down if self._plan is not None else frozenset()
        return planned if self._health is None else planned | self._health.down()

    async def _sync(self, plan: NodePlan, *, check: bool = False,
                    readback: tuple[int, Readback] | None = None) -> DataplaneReport:
        async with self._lock:
            taken: Readback | None = None
            if readback is not None:
                epoch, taken = readback
                if epoch != self._epoch:
                    # a change of ours reached the kernel while it was read: the read may
                    # predate it (it would look like an outside edit); the next check reads
                    log.debug("data plane check skipped: the table changed while it was read")
                    if self.last is not None and self._applied is not None:
                        return DataplaneReport(ApplyResult(ok=True, changed=False),
                                               skipped=self.last.skipped)
                    taken, check = None, False
            down = self._down()
            duties = (plan.nat, down, plan.local_vips)
            if (
                not check
                and duties == self._applied
                and self.last is not None
                and not self._nft.due_for_readback()
            ):
                # nothing changed on our side and the remembered table is still trusted
                return DataplaneReport(ApplyResult(ok=True, changed=False),
                                       skipped=self.last.skipped)
            fast = None if check else await self._flip(plan, down)
            if fast is not None:
                return fast
            if self._patched is not None:
                # the kernel holds what a flip patched in: remember that table first
                nat, patched_down = self._patched
                self._patched = None
                self._nft.adopt(render(nat, down_set(patched_down), self._render_cache))
            self._applied = None
            self._flips = None
            rendered = render(plan.nat, down_set(down), self._render_cache)
            self._epoch += 1
            result = await asyncio.to_thread(self._nft.apply, rendered, check=check,
                                             readback=taken)
            vips = VipChange()
            if self._vips is not None and result.ok:
                vips = await asyncio.to_thread(self._vips.sync, plan.local_vips)
            if result.ok:
                self._applied = duties
                self._flips = FlipIndex(plan.nat, down, self._render_cache)
            if result.changed:
                log.info("nftables table applied (%s) in %.3fs", result.diff.summary(),
                         result.seconds)
            self.last = DataplaneReport(result, vips, rendered.skipped)
            return self.last
