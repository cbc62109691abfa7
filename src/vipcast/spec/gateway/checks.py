"""Checks of the Gateway API objects and Ingresses of a Spec: each finding names file, object
and field. What the upstream CRDs' CEL rules refuse is refused here too (so a file that loads is
one the API server would take), plus what vipcast cannot serve: RE2-incompatible regexes,
conflicting listeners, unknown or unsupported filters.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from vipcast.spec.errors import Issue
from vipcast.spec.gateway.objects import Gateway, Ingress, Listener
from vipcast.spec.gateway.routes import (
    FILTER_TYPES,
    SUPPORTED_FILTERS,
    HTTPRoute,
    RouteFilter,
    RouteRule,
)

_HOSTNAME = re.compile(
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
#: constructs Python's re accepts and RE2 (Envoy's safe_regex) refuses
_NOT_RE2 = (
    (re.compile(r"\(\?<?[=!]"), "lookaround assertions"),
    (re.compile(r"\\[1-9]|\(\?P="), "backreferences"),
    (re.compile(r"\(\?>|[*+?}][+]"), "atomic groups or possessive quantifiers"),
)
#: listener protocols vipcast serves, and which protocols may share a port with which
SUPPORTED_PROTOCOLS = frozenset({"HTTP", "HTTPS"})
_PORT_FAMILY = {"HTTP": "http", "HTTPS": "tls", "TLS": "tls", "TCP": "tcp", "UDP": "udp"}


class _Objects(Protocol):
    @property
    def gateways(self) -> tuple[Gateway, ...]: ...
    @property
    def http_routes(self) -> tuple[HTTPRoute, ...]: ...
    def served_ingresses(self) -> tuple[Ingress, ...]: ...
    @property
    def origins(self) -> Mapping[str, str]: ...


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid RE2 regular expression (None when it is)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"invalid regular expression {pattern!r}: {exc}"
    for construct, what in _NOT_RE2:
        if construct.search(pattern):
            return f"regular expression {pattern!r} uses {what}, which RE2 (Envoy) does not have"
    return None


def hostname_problem(hostname: str) -> str | None:
    if len(hostname) > 253 or not _HOSTNAME.match(hostname):
        return f"{hostname!r} is not a hostname (lower-case RFC 1123, optionally '*.' first)"
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return None
    return f"{hostname!r} is an IP address; a hostname is needed"


def listener_conflicts(listeners: Sequence[Listener]) -> dict[int, tuple[str, str]]:
    """Listener index -> (reason, message) for listeners that conflict with an earlier one.

    Reasons are the Gateway API's: ``ProtocolConflict`` (one port, protocols that cannot share
    it) and ``HostnameConflict`` (one port and protocol, the same hostname).
    """
    out: dict[int, tuple[str, str]] = {}
    for i, cur in enumerate(listeners):
        for prev in listeners[:i]:
            if prev.port != cur.port:
                continue
            fam_prev = _PORT_FAMILY.get(prev.protocol, prev.protocol)
            fam_cur = _PORT_FAMILY.get(cur.protocol, cur.protocol)
            if fam_prev != fam_cur:
                out[i] = ("ProtocolConflict",
                          f"port {cur.port} is {prev.protocol} on listener {prev.name!r}")
                break
            if (prev.hostname or "") == (cur.hostname or ""):
                host = cur.hostname or "(any hostname)"
                out[i] = ("HostnameConflict",
                          f"{cur.protocol} port {cur.port} {host} is also listener {prev.name!r}")
                break
    return out


def check_gateway_objects(spec: _Objects) -> list[Issue]:
    return [*_gateways(spec), *_routes(spec), *_ingresses(spec)]


def _issue(spec: _Objects, kind: str, key: str, field: str, message: str) -> Issue:
    return Issue(spec.origins.get(f"{kind}/{key}", ""), kind, key, field, message)


def _gateways(spec: _Objects) -> Iterator[Issue]:
    for gw in spec.gateways:
        listeners = gw.spec.listeners
        names: set[str] = set()
        for i, lis in enumerate(listeners):
            at = f"spec.listeners[{i}]"
            if lis.name in names:
                yield _issue(spec, "Gateway", gw.key, f"{at}.name",
                             f"duplicate listener name {lis.name!r}")
            names.add(lis.name)
            if lis.hostname is not None and (problem := hostname_problem(lis.hostname)):
                yield _issue(spec, "Gateway", gw.key, f"{at}.hostname", problem)
            if lis.protocol not in SUPPORTED_PROTOCOLS:
                yield _issue(spec, "Gateway", gw.key, f"{at}.protocol",
                             f"protocol {lis.protocol!r} is not served (HTTP or HTTPS)")
            if lis.protocol == "HTTPS":
                tls = lis.tls
                if tls is None or not tls.certificate_refs:
                    yield _issue(spec, "Gateway", gw.key, f"{at}.tls.certificateRefs",
                                 "an HTTPS listener needs at least one certificateRef")
                elif tls.mode != "Terminate":
                    yield _issue(spec, "Gateway", gw.key, f"{at}.tls.mode",
                                 "only Terminate is served for HTTPS")
            elif lis.tls is not None:
                yield _issue(spec, "Gateway", gw.key, f"{at}.tls",
                             f"tls is only for HTTPS/TLS listeners, not {lis.protocol}")
        for i, (_reason, message) in sorted(listener_conflicts(listeners).items()):
            yield _issue(spec, "Gateway", gw.key, f"spec.listeners[{i}]",
                         f"conflicting listener: {message}")
        for i, addr in enumerate(gw.spec.addresses):
            if addr.type != "IPAddress":
                yield _issue(spec, "Gateway", gw.key, f"spec.addresses[{i}].type",
                             f"address type {addr.type!r} is not served (IPAddress)")
                continue
            try:
                ipaddress.ip_address(addr.value)
            except ValueError:
                yield _issue(spec, "Gateway", gw.key, f"spec.addresses[{i}].value",
                             f"{addr.value!r} is not an IP address")


def _filter_issues(where: str, i: int, flt: RouteFilter) -> Iterator[tuple[str, str]]:
    at = f"{where}.filters[{i}]"
    if flt.type not in FILTER_TYPES:
        yield f"{at}.type", f"unknown filter {flt.type!r} (known: {', '.join(FILTER_TYPES)})"
        return
    if flt.type not in SUPPORTED_FILTERS:
        yield f"{at}.type", (f"filter {flt.type} is not supported by vipcast "
                             f"(supported: {', '.join(sorted(SUPPORTED_FILTERS))})")
        return
    configs = {
        "RequestHeaderModifier": ("requestHeaderModifier", flt.request_header_modifier),
        "ResponseHeaderModifier": ("responseHeaderModifier", flt.response_header_modifier),
        "RequestRedirect": ("requestRedirect", flt.request_redirect),
        "URLRewrite": ("urlRewrite", flt.url_rewrite),
        "RequestMirror": ("requestMirror", flt.request_mirror),
        "ExtensionRef": ("extensionRef", flt.extension_ref),
        "CORS": ("cors", flt.cors),
    }
    for kind, (field, cfg) in configs.items():
        if kind == flt.type and cfg is None:
            yield f"{at}.{field}", f"filter {flt.type} needs its {field} settings"
        elif kind != flt.type and cfg is not None:
            yield f"{at}.{field}", f"{field} is set but the filter's type is {flt.type}"
    mod = flt.request_header_modifier or flt.response_header_modifier
    if mod is not None:
        for name in [h.name for h in (*mod.set, *mod.add)] + list(mod.remove):
            if not _HEADER_NAME.match(name):
                yield at, f"{name!r} is not a header name"


def _rule_issues(route: HTTPRoute, r: int, rule: RouteRule) -> Iterator[tuple[str, str]]:
    where = f"spec.rules[{r}]"
    for m, match in enumerate(rule.matches):
        at = f"{where}.matches[{m}]"
        path = match.path
        if path.type == "RegularExpression":
            if problem := regex_problem(path.value):
                yield f"{at}.path.value", problem
        elif not path.value.startswith("/"):
            yield f"{at}.path.value", f"{path.value!r} must be an absolute path (start with '/')"
        items = [("headers", h, x.type, x.name, x.value) for h, x in enumerate(match.headers)]
        items += [("queryParams", q, x.type, x.name, x.value)
                  for q, x in enumerate(match.query_params)]
        for kind, h, type_, name, value in items:
            if type_ == "RegularExpression" and (problem := regex_problem(value)):
                yield f"{at}.{kind}[{h}].value", problem
            if kind == "headers" and not _HEADER_NAME.match(name):
                yield f"{at}.{kind}[{h}].name", f"{name!r} is not a header name"
    types = [f.type for f in rule.filters]
    for i, flt in enumerate(rule.filters):
        yield from _filter_issues(where, i, flt)
        modifier = (flt.request_redirect or flt.url_rewrite)
        if modifier is not None and modifier.path is not None:
            pm = modifier.path
            if pm.type == "ReplacePrefixMatch":
                if pm.replace_prefix_match is None:
                    yield f"{where}.filters[{i}]", "ReplacePrefixMatch needs replacePrefixMatch"
                if any(m.path.type != "PathPrefix" for m in rule.matches):
                    yield (f"{where}.filters[{i}]",
                           "ReplacePrefixMatch needs every match of the rule to be PathPrefix")
            elif pm.replace_full_path is None:
                yield f"{where}.filters[{i}]", "ReplaceFullPath needs replaceFullPath"
    for kind in set(types):
        if types.count(kind) > 1 and kind in SUPPORTED_FILTERS - {"RequestHeaderModifier",
                                                                 "ResponseHeaderModifier"}:
            yield f"{where}.filters", f"filter {kind} may appear once per rule"
    if "RequestRedirect" in types and "URLRewrite" in types:
        yield f"{where}.filters", "RequestRedirect and URLRewrite cannot be used together"
    if "RequestRedirect" in types and rule.backend_refs:
        yield f"{where}.backendRefs", "a rule with a RequestRedirect filter has no backendRefs"
    for b, ref in enumerate(rule.backend_refs):
        if ref.group == "" and ref.kind == "Service" and ref.port is None:
            yield f"{where}.backendRefs[{b}].port", "a Service backendRef needs a port"
        for i, flt in enumerate(ref.filters):
            yield from _filter_issues(f"{where}.backendRefs[{b}]", i, flt)


def _routes(spec: _Objects) -> Iterator[Issue]:
    for route in spec.http_routes:
        for h, host in enumerate(route.spec.hostnames):
            if problem := hostname_problem(host):
                yield _issue(spec, "HTTPRoute", route.key, f"spec.hostnames[{h}]", problem)
        for r, rule in enumerate(route.spec.rules):
            for field, message in _rule_issues(route, r, rule):
                yield _issue(spec, "HTTPRoute", route.key, field, message)


def _ingresses(spec: _Objects) -> Iterator[Issue]:
    # another controller's Ingresses are not judged (a resource backend may be fine there)
    for ing in spec.served_ingresses():
        backends = [("spec.defaultBackend", ing.spec.default_backend)]
        for r, rule in enumerate(ing.spec.rules):
            if rule.host is not None and (problem := hostname_problem(rule.host)):
                yield _issue(spec, "Ingress", ing.key, f"spec.rules[{r}].host", problem)
            for p, path in enumerate(rule.http.paths if rule.http else ()):
                at = f"spec.rules[{r}].http.paths[{p}]"
                if not path.path.startswith("/"):
                    yield _issue(spec, "Ingress", ing.key, f"{at}.path",
                                 f"{path.path!r} must be an absolute path (start with '/')")
                backends.append((f"{at}.backend", path.backend))
        for at, backend in backends:
            if backend is None:
                continue
            if backend.service is None:
                yield _issue(spec, "Ingress", ing.key, at,
                             "only service backends are served (not resource)")
                continue
            port = backend.service.port
            if (port.number is None) == (port.name is None):
                yield _issue(spec, "Ingress", ing.key, f"{at}.service.port",
                             "exactly one of number or name")
