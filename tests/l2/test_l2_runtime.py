"""L2Runtime without a network: plan in, ownership/status/metrics out (no socket opens)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from vipcast.core.desired import L2Ownership, NodePlan
from vipcast.runtime.l2.driver import L2Config, L2Runtime

MISSING_IF = "vc-no-such-if"


def test_single_node_owns_its_vips_and_reports_status() -> None:
    async def scenario() -> None:
        registry = CollectorRegistry()
        seen: list[frozenset[str]] = []
        runtime = L2Runtime(L2Config("a"), registry, boot=1, on_ownership=seen.append)
        plan = NodePlan(
            node="a",
            l2=(
                L2Ownership("192.0.2.50", (MISSING_IF,), "a", ("a",)),
                L2Ownership("192.0.2.51", (MISSING_IF,), "b", ("b",)),
            ),
        )
        await runtime.start()
        await runtime.apply(plan)
        status = runtime.status()
        assert seen == [frozenset({"192.0.2.50"})]
        vips = {v["ip"]: v for v in status["vips"]}  # type: ignore[attr-defined]
        assert vips["192.0.2.50"]["answering_here"] is True
        assert vips["192.0.2.51"]["owner"] is None  # b is not a member we know alive
        assert MISSING_IF in status["interface_errors"]  # type: ignore[operator]
        assert registry.get_sample_value("vipcast_l2_vip_owned", {"ip": "192.0.2.50"}) == 1
        assert registry.get_sample_value("vipcast_l2_vip_owned", {"ip": "192.0.2.51"}) == 0
        await runtime.apply(NodePlan(node="a"))
        assert seen[-1] == frozenset()
        await runtime.stop()

    asyncio.run(scenario())
