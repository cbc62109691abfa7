"""The health-flip fast path: a change of the backends down is patched into the kernel's table
without a whole render, and the kernel ends up with exactly what a whole render gives."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest
from dp_plans import MIXED, NatRule

from vipcast.core.desired import Backend, NodePlan
from vipcast.dataplane.nft import NftTable, canonical
from vipcast.dataplane.nft_render import down_set, render
from vipcast.dataplane.node import NodeDataplane

pytestmark = pytest.mark.netns

#: a backend two services share, and a VIP port that two rules claim (only the first renders)
SHARED = (
    NatRule("a/one", "203.0.113.20", 80, "TCP", (
        Backend("192.0.2.30", 8080, "n2"), Backend("192.0.2.31", 8080, "n3"))),
    NatRule("a/two", "203.0.113.21", 80, "TCP", (
        Backend("192.0.2.30", 8080, "n2"), Backend("192.0.2.2", 8080, "n1", local=True))),
    NatRule("a/zz-dup", "203.0.113.21", 80, "TCP", (Backend("192.0.2.32", 8080, "n2"),)),
)
RULES = (*MIXED, *SHARED)
BACKENDS = sorted({(b.ip, b.port) for r in RULES for b in r.backends})


def test_flips_are_patched_and_match_a_whole_render(fresh_ns: str) -> None:
    async def scenario() -> None:
        table = NftTable(fresh_ns, readback_every=3600)
        dataplane = NodeDataplane(table)
        plan = NodePlan(node="n1", nat=RULES)
        first = await dataplane.apply_report(plan)
        assert (first.ok and first.nft.mode != "patch") or first.nft.changed
        rng = random.Random(7)
        down: frozenset[tuple[str, int]] = frozenset()
        for _ in range(25):
            down = frozenset(k for k in BACKENDS if rng.random() < 0.4)
            report = await dataplane.apply_report(replace(plan, down=down))
            assert report.ok, report.nft.error
            assert report.nft.mode == "patch" and not report.nft.read_back
            kernel = await asyncio.to_thread(table.read)
            assert kernel == canonical(render(RULES, down_set(down)).objects), down
        # a plan change after flips: the whole-table path starts from what the kernel holds
        fewer = replace(plan, nat=RULES[:-2], down=down)
        report = await dataplane.apply_report(fewer)
        assert report.ok and report.nft.changed
        kernel = await asyncio.to_thread(table.read)
        assert kernel == canonical(render(RULES[:-2], down_set(down)).objects)
        await asyncio.to_thread(table.cleanup)

    asyncio.run(scenario())
