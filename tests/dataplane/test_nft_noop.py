"""The no-op apply path: a remembered table makes re-applying free; read-backs find outside
edits (real kernel, fresh namespace)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from dp_plans import CLUSTER_WEB, LOCAL_WEB, MIXED

from vipcast.core.desired import NodePlan
from vipcast.dataplane.nft import NftTable, canonical
from vipcast.dataplane.nft_render import down_set, render
from vipcast.dataplane.node import NodeDataplane
from vipcast.lab.netns import run_command

pytestmark = pytest.mark.netns


def _nft(ns: str, *args: str) -> None:
    run_command(["ip", "netns", "exec", ns, "nft", *args])


def test_reapply_from_memory_reads_nothing(fresh_ns: str) -> None:
    table = NftTable(fresh_ns)
    rendered = render(MIXED)
    first = table.apply(rendered)
    assert first.ok and first.changed and first.read_back
    again = table.apply(render(MIXED))  # equal objects, another render
    assert again.ok and not again.changed and not again.read_back
    changed = table.apply(render((CLUSTER_WEB, LOCAL_WEB)))
    assert changed.ok and changed.changed and not changed.read_back and changed.mode == "patch"
    assert table.read() == canonical(render((CLUSTER_WEB, LOCAL_WEB)).objects)


def test_outside_edit_is_found_by_a_check_and_undone(fresh_ns: str) -> None:
    table = NftTable(fresh_ns)
    rendered = render(MIXED)
    table.apply(rendered)
    _nft(fresh_ns, "flush", "chain", "inet", "vipcast", "prerouting")
    trusted = table.apply(rendered)
    assert not trusted.changed and not trusted.read_back  # memory is trusted until checked
    checked = table.apply(rendered, check=True)
    assert checked.ok and checked.changed and checked.read_back
    assert "rule prerouting#0" in checked.diff.added
    assert table.read() == canonical(rendered.objects)


def test_readback_interval_zero_reads_every_time(fresh_ns: str) -> None:
    table = NftTable(fresh_ns, readback_every=0.0)
    rendered = render(MIXED)
    table.apply(rendered)
    again = table.apply(rendered)
    assert again.read_back and not again.changed


def test_stale_memory_falls_back_to_read_back_and_replace(fresh_ns: str) -> None:
    table = NftTable(fresh_ns)
    table.apply(render((CLUSTER_WEB,)))
    _nft(fresh_ns, "delete", "table", "inet", "vipcast")  # behind our back
    result = table.apply(render((CLUSTER_WEB, LOCAL_WEB)))
    assert result.ok and result.changed and result.read_back and result.mode == "replace"
    assert table.read() == canonical(render((CLUSTER_WEB, LOCAL_WEB)).objects)


def test_node_dataplane_noop_and_periodic_check(fresh_ns: str) -> None:
    async def scenario() -> None:
        dp = NodeDataplane(NftTable(fresh_ns, readback_every=0.3))
        plan = NodePlan(node="n1", nat=MIXED)
        first = await dp.apply_report(plan)
        assert first.ok and first.nft.changed
        again = await dp.apply_report(NodePlan(node="n1", nat=MIXED))
        # a no-op: nothing sent to the kernel and nothing read back (its cost is
        # bench/dataplane_apply.json's figure, not this test's)
        assert again.ok and not again.nft.changed and not again.nft.read_back
        runner = asyncio.create_task(dp.run())
        try:
            _nft(fresh_ns, "delete", "table", "inet", "vipcast")
            deadline = time.monotonic() + 10
            while await asyncio.to_thread(NftTable(fresh_ns).read) is None:
                assert time.monotonic() < deadline, "outside delete not undone"
                await asyncio.sleep(0.05)
        finally:
            runner.cancel()
            with pytest.raises(asyncio.CancelledError):
                await runner
        assert NftTable(fresh_ns).read() == canonical(render(MIXED).objects)

    asyncio.run(scenario())


def test_a_flip_does_not_wait_for_the_periodic_read_back(fresh_ns: str) -> None:
    """The periodic check reads the kernel without the lock: a flip arriving meanwhile is
    patched at once, and the read it may have overtaken is not taken for an outside edit."""
    import threading
    from dataclasses import replace

    async def scenario() -> None:
        table = NftTable(fresh_ns, readback_every=3600)
        dp = NodeDataplane(table)
        plan = NodePlan(node="n1", nat=MIXED)
        assert (await dp.apply_report(plan)).ok
        reading, release = threading.Event(), threading.Event()
        real_read = table.read

        def held_read() -> Any:
            out = real_read()  # the real kernel, read before the flip ...
            reading.set()
            release.wait(30)  # ... and held until the flip went through
            return out

        table.read = held_read  # type: ignore[method-assign]
        check = asyncio.create_task(dp.refresh(check=True))
        assert await asyncio.to_thread(reading.wait, 30)
        down = frozenset({("192.0.2.6", 8080)})
        flipped = await asyncio.wait_for(dp.apply_report(replace(plan, down=down)), 30)
        assert not check.done()  # the flip did not wait for the check
        assert flipped.ok and flipped.nft.mode == "patch"
        release.set()
        report = await check
        assert report is not None and report.ok and not report.nft.changed
        table.read = real_read  # type: ignore[method-assign]
        assert await asyncio.to_thread(table.read) == canonical(
            render(MIXED, down_set(down)).objects)
        # the next check, with nothing in between, reads and finds the table as it should be
        again = await dp.refresh(check=True)
        assert again is not None and again.nft.read_back and not again.nft.changed

    asyncio.run(scenario())
