"""Which route of a proxy model answers a request: the proxy's matching, as a pure function.

Used by ``vipcast explain`` and by the tests (a reference of the Gateway API's precedence is
compared with what the ordered model answers). Virtual host selection is Envoy's: an exact
domain, then the longest ``*.`` suffix, then ``*``; within it, the first route that matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from vipcast.core.gateway.model import Match, ProxyModel, Route, RouteConfig, VirtualHost


@dataclass(frozen=True)
class Request:
    host: str
    path: str = "/"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)


def path_prefix_matches(prefix: str, path: str) -> bool:
    """The Gateway API's PathPrefix: by whole path elements, a trailing '/' ignored."""
    base = prefix.rstrip("/")
    if not base:
        return True
    return path == base or path.startswith(base + "/")


def match_matches(m: Match, req: Request) -> bool:
    if m.path_kind == "Exact":
        if req.path != m.path:
            return False
    elif m.path_kind == "PathPrefix":
        if not path_prefix_matches(m.path, req.path):
            return False
    elif re.fullmatch(m.path, req.path) is None:
        return False
    if m.method is not None and req.method != m.method:
        return False
    headers = {k.lower(): v for k, v in req.headers.items()}
    headers.setdefault(":authority", req.host)
    for h in m.headers:
        got = headers.get(h.name)
        if got is None or not (re.fullmatch(h.value, got) if h.regex else got == h.value):
            return False
    for q in m.query:
        got = req.query.get(q.name)
        if got is None or not (re.fullmatch(q.value, got) if q.regex else got == q.value):
            return False
    return True


def virtual_host(config: RouteConfig, host: str) -> VirtualHost | None:
    host = host.lower().split(":", 1)[0]
    exact = [vh for vh in config.virtual_hosts if host in vh.domains]
    if exact:
        return exact[0]
    best: tuple[int, VirtualHost] | None = None
    for vh in config.virtual_hosts:
        for d in vh.domains:
            wild = d.startswith("*.") and host.endswith(d[1:]) and len(host) > len(d) - 1
            if wild and (best is None or len(d) > best[0]):
                best = (len(d), vh)
    if best is not None:
        return best[1]
    return next((vh for vh in config.virtual_hosts if "*" in vh.domains), None)


def route_for(config: RouteConfig, req: Request) -> Route | None:
    vh = virtual_host(config, req.host)
    if vh is None:
        return None
    return next((r for r in vh.routes if match_matches(r.match, req)), None)


def listener_config(
    model: ProxyModel, address: str, port: int, sni: str | None = None
) -> RouteConfig | None:
    """The route configuration a connection to ``address:port`` (with ``sni``) is served by."""
    for lis in model.listeners:
        if lis.address != address or lis.port != port:
            continue
        chains = list(lis.filter_chains)
        chosen = None
        if sni is not None:
            named = [(n, c) for c in chains for n in c.server_names
                     if n == sni or (n.startswith("*.") and sni.endswith(n[1:]))]
            if named:
                chosen = max(named, key=lambda nc: (not nc[0].startswith("*."), len(nc[0])))[1]
        if chosen is None:
            chosen = next((c for c in chains if not c.server_names), None)
        return model.route_config(chosen.route_config) if chosen else None
    return None
