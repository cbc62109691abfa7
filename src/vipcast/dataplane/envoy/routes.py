"""Model routes -> Envoy ``RouteConfiguration`` (pure).

Gateway API semantics carried into Envoy's vocabulary:

- PathPrefix matches whole path elements: ``path_separated_prefix`` (a trailing '/' of the
  value dropped; ``/`` is a plain prefix).
- ReplacePrefixMatch cannot be one Envoy route (``prefix_rewrite`` of ``/foo`` by ``/`` would
  give ``//x``): it becomes two routes, the exact path (rewritten whole) and ``/foo/`` as a
  plain prefix rewritten to ``<replacement>/`` — Envoy's documented way.
- RequestRedirect without a port keeps the scheme's well-known port (none in Location) or the
  listener's port; the Host is matched and forwarded without a port equal to the listener's.
- A rule without a valid backend is answered 500 by Envoy itself; so is the invalid share of a
  weighted rule (the Gateway API's rule): a route before the rule's own, with the same match
  and a ``runtime_fraction`` of that share, answers 500; the rest goes to the valid backends.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from vipcast.core.gateway.model import INVALID_BACKEND, HeaderOps, Match, Route, RouteConfig

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}
_WELL_KNOWN = {"http": 80, "https": 443}


def _string(value: str, regex: bool) -> string_pb2.StringMatcher:
    if regex:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=value))
    return string_pb2.StringMatcher(exact=value)


def _route_match(m: Match, path_override: tuple[str, str] | None = None) -> rc.RouteMatch:
    out = rc.RouteMatch()
    kind, value = path_override or (m.path_kind, m.path)
    if kind == "Exact":
        out.path = value
    elif kind == "RegularExpression":
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=value))
    elif kind == "Prefix":
        out.prefix = value
    else:
        base = value.rstrip("/")
        if base:
            out.path_separated_prefix = base
        else:
            out.prefix = "/"
    if m.method:
        out.headers.append(rc.HeaderMatcher(name=":method", string_match=_string(m.method, False)))
    for h in m.headers:
        out.headers.append(rc.HeaderMatcher(name=h.name, string_match=_string(h.value, h.regex)))
    for q in m.query:
        out.query_parameters.append(
            rc.QueryParameterMatcher(name=q.name, string_match=_string(q.value, q.regex)))
    return out


def _header_options(ops: HeaderOps) -> list[base_pb2.HeaderValueOption]:
    out = []
    for name, value in ops.set:
        out.append(base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=name.lower(), value=value),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD))
    for name, value in ops.add:
        out.append(base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=name.lower(), value=value),
            append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD))
    return out


def _full_path(value: str) -> regex_pb2.RegexMatchAndSubstitute:
    return regex_pb2.RegexMatchAndSubstitute(
        pattern=regex_pb2.RegexMatcher(regex="^/.*$"), substitution=value)


def _split_prefix(route: Route) -> list[tuple[tuple[str, str] | None, str | None]]:
    """(path override, prefix replacement) per Envoy route: two for ReplacePrefixMatch."""
    modifier = (route.redirect.path if route.redirect else None) or (
        route.rewrite.path if route.rewrite else None)
    if modifier is None or modifier.kind != "ReplacePrefixMatch":
        return [(None, None)]
    base = route.match.path.rstrip("/")
    repl = modifier.value.rstrip("/")
    if not base:  # prefix "/": every path, the replacement put in front
        return [(("Prefix", "/"), repl + "/")]
    return [(("Exact", base), repl or "/"), (("Prefix", base + "/"), repl + "/")]


def _route(route: Route, cfg: RouteConfig, override: tuple[str, str] | None,
           prefix: str | None, index: int) -> rc.Route:
    out = rc.Route(name=route.name if index == 0 else f"{route.name}/{index}",
                   match=_route_match(route.match, override))
    out.request_headers_to_add.extend(_header_options(route.request_headers))
    out.request_headers_to_remove.extend(h.lower() for h in route.request_headers.remove)
    out.response_headers_to_add.extend(_header_options(route.response_headers))
    out.response_headers_to_remove.extend(h.lower() for h in route.response_headers.remove)
    exact_rewrite = override is not None and override[0] == "Exact"
    if route.redirect is not None:
        red = route.redirect
        action = rc.RedirectAction(response_code=_REDIRECT_CODES[red.status_code])
        if red.scheme:
            action.scheme_redirect = red.scheme
        if red.hostname:
            action.host_redirect = red.hostname
        scheme = red.scheme or ("https" if cfg.https else "http")
        port = red.port or (None if red.scheme else cfg.port)
        if port is not None and port != _WELL_KNOWN[scheme]:
            action.port_redirect = port
        # else: no port in Location (Envoy writes an explicit port_redirect, even 443, out)
        if red.path is not None:
            if red.path.kind == "ReplaceFullPath":
                action.path_redirect = red.path.value
            elif exact_rewrite:
                action.path_redirect = prefix or "/"
            else:
                action.prefix_rewrite = prefix or "/"
        out.redirect.CopyFrom(action)
        return out
    if route.direct_status is not None:
        out.direct_response.CopyFrom(rc.DirectResponseAction(status=route.direct_status))
        return out
    ra = rc.RouteAction()
    backends = [b for b in route.backends if b.cluster != INVALID_BACKEND]
    if len(backends) == 1:
        ra.cluster = backends[0].cluster
    else:
        ra.weighted_clusters.CopyFrom(rc.WeightedCluster(clusters=[
            rc.WeightedCluster.ClusterWeight(name=b.cluster,
                                             weight=wrappers_pb2.UInt32Value(value=b.weight))
            for b in backends]))
    if route.rewrite is not None:
        rw = route.rewrite
        if rw.hostname:
            ra.host_rewrite_literal = rw.hostname
        if rw.path is not None:
            if rw.path.kind == "ReplaceFullPath":
                ra.regex_rewrite.CopyFrom(_full_path(rw.path.value))
            elif exact_rewrite:
                ra.regex_rewrite.CopyFrom(_full_path(prefix or "/"))
            else:
                ra.prefix_rewrite = prefix or "/"
    if route.timeout is not None:
        ra.timeout.CopyFrom(duration_pb2.Duration(
            seconds=int(route.timeout), nanos=round(route.timeout % 1 * 1e9)))
    out.route.CopyFrom(ra)
    return out


def _invalid_share(route: Route) -> int:
    """Parts per million of the rule's weight that names an invalid backend (0: none)."""
    total = sum(b.weight for b in route.backends)
    bad = sum(b.weight for b in route.backends if b.cluster == INVALID_BACKEND)
    if not bad or not total or route.direct_status is not None or route.redirect is not None:
        return 0
    return max(1, round(bad * 1_000_000 / total))


def _invalid_route(route: Route, override: tuple[str, str] | None, index: int,
                   share: int) -> rc.Route:
    """The invalid backends' share of a weighted rule: the same match, matched for ``share``
    parts per million of the requests, answered 500."""
    match = _route_match(route.match, override)
    match.runtime_fraction.CopyFrom(base_pb2.RuntimeFractionalPercent(
        default_value=percent_pb2.FractionalPercent(
            numerator=share, denominator=percent_pb2.FractionalPercent.MILLION)))
    name = route.name if index == 0 else f"{route.name}/{index}"
    out = rc.Route(name=f"{name}/invalid-backends", match=match)
    out.response_headers_to_add.extend(_header_options(route.response_headers))
    out.response_headers_to_remove.extend(h.lower() for h in route.response_headers.remove)
    out.direct_response.CopyFrom(rc.DirectResponseAction(status=500))
    return out


def route_configuration(cfg: RouteConfig) -> route_pb2.RouteConfiguration:
    vhosts = []
    for vh in cfg.virtual_hosts:
        routes = []
        for route in vh.routes:
            share = _invalid_share(route)
            for i, (override, prefix) in enumerate(_split_prefix(route)):
                if share:
                    routes.append(_invalid_route(route, override, i, share))
                routes.append(_route(route, cfg, override, prefix, i))
        vhosts.append(rc.VirtualHost(name=vh.name, domains=list(vh.domains), routes=routes))
    return route_pb2.RouteConfiguration(
        name=cfg.name,
        virtual_hosts=vhosts,
        ignore_port_in_host_matching=True,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
    )

