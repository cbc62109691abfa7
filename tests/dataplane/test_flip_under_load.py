"""Health flips under load through the element layout: client -> router -> node -> backends.

wrk keeps keep-alive connections open through the VIP (IPv4, Cluster) while the plan marks
backends down and up again; every flip must be a patch of elements (no chain per service, no
whole-table replace), no request may fail, and connections established before a flip stay on
their backend. Between flips, fresh connections (one per request) show the flip took effect:
none reaches a backend that is down, IPv6 Local traffic keeps the client's own address.
Everything is bounded (wrk's duration, request counts) and stays in this run's namespaces.
"""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
from dataclasses import replace

import pytest
from dp_lab import BACKEND_PORT, CLIENT6, VIP4, VIP6, TrafficLab
from dp_plans import scale_rules

from vipcast.core.desired import Backend, NatRule, NodePlan
from vipcast.dataplane.nft import NftTable, canonical
from vipcast.dataplane.nft_render import down_set, render
from vipcast.dataplane.node import NodeDataplane
from vipcast.dataplane.routes import LocalVips

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None,
                       reason="wrk not installed (scripts/setup.sh installs it)"),
]


def _wrk(lab: TrafficLab, seconds: int) -> dict[str, int]:
    """wrk from the client to VIP4 (8 keep-alive connections); requests, errors, non-2xx."""
    out = lab.client.run(
        ["wrk", "-d", f"{seconds}s", "-c", "8", "-t", "1", "--timeout", "3s",
         f"http://{VIP4}/"], timeout=seconds + 60).stdout
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert total is not None, out
    return {
        "requests": int(total.group(1)),
        "errors": sum(map(int, re.findall(r"\d+", errors.group(1)))) if errors else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def test_flips_under_load_fail_no_request(traffic_lab: TrafficLab) -> None:
    lab = traffic_lab
    web = NatRule("default/web", VIP4, 80, "TCP", tuple(
        Backend(b.ip4, BACKEND_PORT, f"n{i + 2}") for i, b in enumerate(lab.backends)))
    web6 = NatRule("default/web6", VIP6, 80, "TCP", tuple(
        Backend(b.ip6, BACKEND_PORT, "n1", local=True) for b in lab.backends), "Local")
    # a table of some size around them: 300 more VIP ports of 4 backends (slots 0..3 in use)
    filler = scale_rules(300, 4)
    plan = NodePlan(node="n1", nat=(web, web6, *filler), local_vips=(VIP4, VIP6))
    # each step: the backends down (by name, both families): 3 -> 2 -> 1 -> 0 usable and back
    steps = [{"b2"}, {"b2", "b3"}, {"b1", "b2", "b3"}, {"b3"}, set(), {"b1"}, {"b1", "b3"},
             set(), {"b2"}, set()]
    by_name = {b.name: b for b in lab.backends}

    async def scenario() -> None:
        table = NftTable(lab.node.name, readback_every=3600)
        dp = NodeDataplane(table, LocalVips(lab.node.name))
        first = await dp.apply_report(plan)
        assert first.ok, first.nft.error
        load = asyncio.create_task(asyncio.to_thread(_wrk, lab, 2 * len(steps) + 2))
        await asyncio.sleep(1.0)
        fresh: collections.Counter[str] = collections.Counter()
        for names in steps:
            frozen = frozenset(k for n in names for k in (
                (by_name[n].ip4, BACKEND_PORT), (by_name[n].ip6, BACKEND_PORT)))
            report = await dp.apply_report(replace(plan, down=frozen))
            assert report.ok, report.nft.error
            assert report.nft.mode == "patch" and not report.nft.read_back
            # new connections see the flip at once: none reaches a backend that is down
            for _ in range(6):
                r = await lab.get(VIP4, timeout=3.0)
                if len(names) < len(lab.backends):
                    assert r.ok, r.error
                    name = r.body.decode().split()[0]
                    assert name not in names, (name, names)
                    fresh[name] += 1
                    r6 = await lab.get(VIP6, timeout=3.0)
                    assert r6.ok, r6.error
                    name6, client6 = r6.body.decode().split()
                    assert name6 not in names and client6 == CLIENT6, (name6, client6)
            kernel = await asyncio.to_thread(table.read)
            assert kernel == canonical(render(plan.nat, down_set(frozen)).objects), names
            await asyncio.sleep(1.0)
        result = await load
        assert result["requests"] > 0
        # established keep-alive connections kept working through every flip (conntrack)
        assert result["errors"] == 0 and result["non2xx"] == 0, result
        assert set(fresh) == {b.name for b in lab.backends}, fresh
        await asyncio.to_thread(table.cleanup)

    asyncio.run(asyncio.wait_for(scenario(), 180))
