"""An in-memory data plane with the same ``apply(plan)`` shape, for core and agent tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from vipcast.core.desired import NodePlan
from vipcast.dataplane.nft_render import Rendered, render


@dataclass
class MemoryDataplane:
    """Records every plan it is given and the table it would have installed."""

    plans: list[NodePlan] = field(default_factory=list)
    table: Rendered | None = None
    local_vips: frozenset[str] = frozenset()

    async def apply(self, plan: NodePlan) -> None:
        self.plans.append(plan)
        self.table = render(plan.nat)
        self.local_vips = frozenset(plan.local_vips)

    def has_healthy_backend(self, service: str) -> bool:
        plan = self.plans[-1] if self.plans else None
        return plan is not None and any(
            r.service == service and any(b.ready for b in r.backends) for r in plan.nat
        )
