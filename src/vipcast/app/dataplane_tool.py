"""``vipcast dataplane ...`` composed: a node's plan (from a plan file, or planned from object
files), its nftables render, and one apply, read-back or clean-up of table ``inet vipcast`` and
the local VIP routes in a network namespace. The CLI parses and prints; this builds.

Netlink and libnftables are imported by the functions that touch the kernel only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from vipcast.core.desired import BackendKey, NodePlan
from vipcast.dataplane.nft_render import Rendered, down_set, render
from vipcast.dataplane.planfile import PlanFileError, plan_from_data

if TYPE_CHECKING:
    from vipcast.dataplane.nft import ApplyResult
    from vipcast.dataplane.routes import VipChange


class PlanInputError(Exception):
    """No plan could be had from what was given; the message says which file and why."""


def node_plan(plan_file: Path | None, config: Sequence[Path] | None, node: str | None,
              ) -> NodePlan:
    """The plan of ``plan_file`` (YAML/JSON: node, nat, local_vips), else the one the agent's
    planner makes of the ``config`` object files for ``node``."""
    if plan_file is not None:
        try:
            return plan_from_data(yaml.safe_load(plan_file.read_text()))
        except (OSError, yaml.YAMLError, PlanFileError) as exc:
            raise PlanInputError(f"cannot read plan {plan_file}: {exc}") from exc
    if config and node:
        from vipcast.app.agent import default_planner
        from vipcast.sources.files import load_paths
        from vipcast.spec.errors import SpecError

        try:
            spec = load_paths(config)
        except SpecError as exc:
            raise PlanInputError(f"invalid configuration:\n{exc}") from exc
        return default_planner(spec, node)
    raise PlanInputError("give a PLANFILE, or --config FILES with --node NAME")


def render_plan(plan: NodePlan, down: Iterable[BackendKey] = ()) -> Rendered:
    """The libnftables transaction of ``plan``'s NAT rules, ``down`` backends left out."""
    return render(plan.nat, down_set(down))


@dataclass(frozen=True)
class Applied:
    """One apply: the nftables outcome, and the local VIP routes' change (None: not synced,
    because routes were not asked for or the table was refused)."""

    nft: ApplyResult
    vips: VipChange | None


def apply_once(plan: NodePlan, netns: str | None, *, routes: bool = True) -> Applied:
    """Apply ``plan``'s table (a no-op when the kernel's matches), then its local VIP routes;
    a refused table keeps the previous one and leaves the routes alone."""
    from vipcast.dataplane.nft import NftTable  # netlink and libnftables: only here
    from vipcast.dataplane.routes import LocalVips

    result = NftTable(netns).apply(render(plan.nat))
    if not result.ok or not routes:
        return Applied(result, None)
    return Applied(result, LocalVips(netns).sync(plan.local_vips))


def installed(netns: str | None) -> dict[str, Any]:
    """The installed table (canonical JSON objects, None: absent) and our local VIP routes."""
    from vipcast.dataplane.nft import NftTable
    from vipcast.dataplane.routes import LocalVips

    objects = NftTable(netns).read()
    return {
        "table": None if objects is None else list(objects),
        "local_vips": sorted(LocalVips(netns).current()),
    }


def clean_up(netns: str | None) -> tuple[bool, int]:
    """Remove table inet vipcast and every local VIP route of ours: (the table was there,
    how many routes went)."""
    from vipcast.dataplane.nft import NftTable
    from vipcast.dataplane.routes import LocalVips

    removed = NftTable(netns).cleanup()
    return removed, len(LocalVips(netns).clear().removed)
