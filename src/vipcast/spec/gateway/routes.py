"""HTTPRoute (``gateway.networking.k8s.io/v1``): the parts vipcast reads, unknown fields refused.

Field names and defaults follow the upstream v1.6.1 standard-channel schema. Parts of the schema
vipcast does not implement (CORS, RequestMirror, ExtensionRef) are accepted as opaque values so
that an object valid upstream loads; the checks and the translation say they are unsupported.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from vipcast.spec.gateway.meta import GatewayObject
from vipcast.spec.meta import Model

GROUP = "gateway.networking.k8s.io"
#: the filter types of the standard channel, and the ones vipcast implements
FILTER_TYPES = (
    "RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect",
    "URLRewrite", "ExtensionRef", "CORS",
)
SUPPORTED_FILTERS = frozenset(
    {"RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite"}
)
Method = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


class ParentReference(Model):
    group: str = GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    name: str = Field(min_length=1)
    section_name: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)


class PathMatch(Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = "/"


class HeaderMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: str = Field(min_length=1)
    value: str


class QueryParamMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: str = Field(min_length=1)
    value: str


class RouteMatch(Model):
    path: PathMatch = Field(default_factory=PathMatch)
    headers: tuple[HeaderMatch, ...] = ()
    query_params: tuple[QueryParamMatch, ...] = ()
    method: Method | None = None


class Header(Model):
    name: str = Field(min_length=1)
    value: str


class HeaderModifier(Model):
    set: tuple[Header, ...] = ()
    add: tuple[Header, ...] = ()
    remove: tuple[str, ...] = ()


class PathModifier(Model):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None


class RequestRedirect(Model):
    scheme: Literal["http", "https"] | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    status_code: Literal[301, 302, 303, 307, 308] = 302


class URLRewrite(Model):
    hostname: str | None = None
    path: PathModifier | None = None


class RouteFilter(Model):
    #: checked against FILTER_TYPES by the checks, so an unknown one is named with its field
    type: str
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    request_redirect: RequestRedirect | None = None
    url_rewrite: URLRewrite | None = Field(default=None, alias="urlRewrite")
    request_mirror: dict[str, Any] | None = None
    extension_ref: dict[str, Any] | None = None
    cors: dict[str, Any] | None = None


class BackendRef(Model):
    group: str = ""
    kind: str = "Service"
    name: str = Field(min_length=1)
    namespace: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    weight: int = Field(default=1, ge=0, le=1_000_000)
    filters: tuple[RouteFilter, ...] = ()


class RouteTimeouts(Model):
    request: str | None = None
    backend_request: str | None = None


class RouteRule(Model):
    name: str | None = None
    matches: tuple[RouteMatch, ...] = Field(default_factory=lambda: (RouteMatch(),))
    filters: tuple[RouteFilter, ...] = ()
    backend_refs: tuple[BackendRef, ...] = ()
    timeouts: RouteTimeouts | None = None


class HTTPRouteSpec(Model):
    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[RouteRule, ...] = Field(default_factory=lambda: (RouteRule(),))


class HTTPRoute(GatewayObject):
    api_version: Literal["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"] = (
        "gateway.networking.k8s.io/v1"
    )
    kind: Literal["HTTPRoute"] = "HTTPRoute"
    spec: HTTPRouteSpec = Field(default_factory=HTTPRouteSpec)
