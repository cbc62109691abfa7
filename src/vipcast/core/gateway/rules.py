"""HTTPRoute rules -> model routes (one per match), and the order the Gateway API gives them.

Precedence (the spec's, in this order): the matching hostname (non-wildcard characters, then
characters); path — Exact, then RegularExpression (implementation-specific: vipcast puts it
here, longer patterns first), then PathPrefix, longest first; a method match; more header
matches; more query parameter matches; then the oldest route (creationTimestamp); then
``namespace/name``; then rule order and match order within the route. The key is unique per
(route, rule, match), so routes sort into one total order whatever order they came in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from vipcast.core.gateway.backends import Refused, resolve_backend
from vipcast.core.gateway.hostnames import specificity
from vipcast.core.gateway.model import (
    INVALID_BACKEND,
    HeaderOps,
    Match,
    PathModifier,
    Redirect,
    Rewrite,
    Route,
    ValueMatch,
    WeightedCluster,
)
from vipcast.spec.gateway.meta import GatewayObject
from vipcast.spec.gateway.objects import ReferenceGrant
from vipcast.spec.gateway.routes import (
    SUPPORTED_FILTERS,
    HeaderModifier,
    HTTPRoute,
    RouteMatch,
    RouteRule,
)
from vipcast.spec.gateway.routes import PathModifier as SpecPathModifier
from vipcast.spec.kube import Service
from vipcast.spec.objects import parse_duration

_PATH_RANK = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}
_EPOCH = "1970-01-01T00:00:00.000000+00:00"


@dataclass(frozen=True)
class RuleRoutes:
    """A route's rules as model routes (in rule, match order), and what did not resolve."""

    routes: tuple[tuple[int, int, Route], ...]
    refused: tuple[Refused, ...]
    unsupported: tuple[str, ...]


def created(obj: GatewayObject) -> str:
    """creationTimestamp normalised to sort as time (absent: the epoch, i.e. oldest)."""
    raw = obj.metadata.creation_timestamp
    if not raw:
        return _EPOCH
    try:
        return datetime.fromisoformat(raw).astimezone(UTC).isoformat(timespec="microseconds")
    except ValueError:
        return _EPOCH


def precedence_key(
    hostname: str, route: HTTPRoute, rule: int, match: int, m: Match
) -> tuple[object, ...]:
    exact, chars = specificity(hostname)
    return (
        -exact, -chars,
        _PATH_RANK[m.path_kind], -len(m.path),
        0 if m.method else 1,
        -len(m.headers), -len(m.query),
        created(route), route.namespace, route.name, rule, match,
    )


def _ops(mod: HeaderModifier | None) -> HeaderOps:
    if mod is None:
        return HeaderOps()
    return HeaderOps(
        set=tuple((h.name, h.value) for h in mod.set),
        add=tuple((h.name, h.value) for h in mod.add),
        remove=tuple(mod.remove),
    )


def _merge(a: HeaderOps, b: HeaderOps) -> HeaderOps:
    return HeaderOps(a.set + b.set, a.add + b.add, a.remove + b.remove)


def _match(m: RouteMatch) -> Match:
    return Match(
        path_kind=m.path.type,
        path=m.path.value,
        method=m.method,
        headers=tuple(ValueMatch(h.name.lower(), h.value, h.type == "RegularExpression")
                      for h in m.headers),
        query=tuple(ValueMatch(q.name, q.value, q.type == "RegularExpression")
                    for q in m.query_params),
    )


def _path(pm: SpecPathModifier | None) -> PathModifier | None:
    if pm is None:
        return None
    value = pm.replace_full_path if pm.type == "ReplaceFullPath" else pm.replace_prefix_match
    return PathModifier(pm.type, value if value is not None else "/")


def _rule(
    route: HTTPRoute, r: int, rule: RouteRule, services: dict[str, Service],
    grants: Sequence[ReferenceGrant],
) -> tuple[list[tuple[int, int, Route]], list[Refused], list[str]]:
    unsupported: list[str] = []
    req, resp = HeaderOps(), HeaderOps()
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    for flt in rule.filters:
        if flt.type not in SUPPORTED_FILTERS:
            unsupported.append(f"spec.rules[{r}]: filter {flt.type} is not supported")
        req = _merge(req, _ops(flt.request_header_modifier))
        resp = _merge(resp, _ops(flt.response_header_modifier))
        if (rr := flt.request_redirect) is not None:
            redirect = Redirect(rr.scheme, rr.hostname, rr.port, _path(rr.path), rr.status_code)
        if (uw := flt.url_rewrite) is not None:
            rewrite = Rewrite(uw.hostname, _path(uw.path))
    refused: list[Refused] = []
    valid: list[WeightedCluster] = []
    invalid_weight = 0
    for ref in rule.backend_refs:
        if ref.filters:
            unsupported.append(f"spec.rules[{r}]: backendRef filters are not supported")
        outcome = resolve_backend(
            group=ref.group, kind=ref.kind, name=ref.name,
            namespace=ref.namespace or route.namespace, port=ref.port,
            route_ns=route.namespace, services=services, grants=grants,
        )
        if isinstance(outcome, Refused):
            refused.append(outcome)
            invalid_weight += ref.weight
        else:  # weight 0 kept: its cluster stays warm for when the weight comes back
            valid.append(WeightedCluster(outcome, ref.weight))
    backends: tuple[WeightedCluster, ...] = ()
    direct: int | None = None
    if redirect is None:
        if any(wc.weight for wc in valid):
            merged: dict[str, int] = {}
            for wc in valid:
                merged[wc.cluster] = merged.get(wc.cluster, 0) + wc.weight
            if invalid_weight:
                merged[INVALID_BACKEND] = merged.get(INVALID_BACKEND, 0) + invalid_weight
            backends = tuple(WeightedCluster(c, w) for c, w in merged.items())
        else:
            direct = 500
    timeout = None
    if rule.timeouts is not None and rule.timeouts.request:
        try:
            timeout = parse_duration(rule.timeouts.request) or None
        except ValueError:
            unsupported.append(f"spec.rules[{r}].timeouts.request: not a duration")
    out = []
    for i, m in enumerate(rule.matches):
        out.append((r, i, Route(
            name=f"{route.key}/rule/{r}/match/{i}",
            match=_match(m),
            backends=backends,
            redirect=redirect,
            rewrite=rewrite,
            request_headers=req,
            response_headers=resp,
            timeout=timeout,
            direct_status=direct,
            source=f"{route.kind}/{route.key}",
        )))
    return out, refused, unsupported


def rule_routes(
    route: HTTPRoute, services: dict[str, Service], grants: Sequence[ReferenceGrant]
) -> RuleRoutes:
    routes: list[tuple[int, int, Route]] = []
    refused: list[Refused] = []
    unsupported: list[str] = []
    for r, rule in enumerate(route.spec.rules):
        got, bad, unsup = _rule(route, r, rule, services, grants)
        routes.extend(got)
        refused.extend(bad)
        unsupported.extend(unsup)
    return RuleRoutes(tuple(routes), tuple(refused), tuple(unsupported))
