"""Why an HTTPRoute is served where it is, or why not (pure, from a translation)."""

from __future__ import annotations

from dataclasses import dataclass

from vipcast.core.gateway.model import RouteParentStatus, Translation


@dataclass(frozen=True)
class Placement:
    """One of the route's (rule, match) entries in a virtual host: its rank there."""

    route_config: str
    domains: tuple[str, ...]
    entry: str
    position: int
    of: int


@dataclass(frozen=True)
class RouteStory:
    key: str
    parents: tuple[RouteParentStatus, ...]
    placements: tuple[Placement, ...]


def explain_route(t: Translation, key: str) -> RouteStory | None:
    """The route's status per parent and where its matches sit (None: not a route of ours)."""
    status = t.route(key)
    if status is None:
        return None
    source = f"HTTPRoute/{key}"
    placements = []
    for cfg in t.model.route_configs:
        for vh in cfg.virtual_hosts:
            for i, r in enumerate(vh.routes):
                if r.source == source:
                    placements.append(Placement(cfg.name, vh.domains, r.name, i + 1,
                                                len(vh.routes)))
    return RouteStory(key, status.parents, tuple(placements))
