"""The proxy model -> xDS resources (Listener, RouteConfiguration, Cluster,
ClusterLoadAssignment, Secret), pure: equal models give byte-equal resources.

Listeners bind the Gateway address with ``freebind`` (the VIP need not be on an interface of
the node yet). HTTP connection managers append the client to X-Forwarded-For
(``use_remote_address``; ``xff_num_trusted_hops`` says how many client-supplied entries to
trust), pass websocket upgrades, speak HTTP/1.1 and HTTP/2 (ALPN on TLS) and may take the
client address from a PROXY protocol v2 header (then connections are balanced exactly over
the workers); the router adds no ``x-envoy-*`` headers.
Certificates come over SDS, so rotating one changes no listener and closes no connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import (
    address_pb2,
    base_pb2,
    config_source_pb2,
    health_check_pb2,
    protocol_pb2,
)
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.proxy_protocol.v3 import proxy_protocol_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

from vipcast.core.gateway.model import (
    Cluster,
    FilterChain,
    ProxyListener,
    ProxyModel,
    TlsCertificate,
)
from vipcast.dataplane.envoy.routes import route_configuration
from vipcast.proto.xds.types import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET


@dataclass(frozen=True)
class ProxyOptions:
    """How the node's proxy treats connections (the same for every Gateway on the node)."""

    #: X-Forwarded-For entries sent by clients that are trusted (0: only the peer is)
    xff_num_trusted_hops: int = 0
    #: accept a PROXY protocol (v1/v2) header from an upstream load balancer tier
    proxy_protocol: bool = False
    connect_timeout: float = 2.0
    #: True: resources name their dependencies over ADS; False: everything inline (static
    #: bootstrap, used to validate rendered resources with ``envoy --mode validate``)
    ads: bool = True


def _any(msg: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(msg)
    return out


def _ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3)


def _duration(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(seconds), nanos=round(seconds % 1 * 1e9))


def _address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(
        address=ip, port_value=port))


def _connection_manager(chain: FilterChain, model: ProxyModel,
                        opts: ProxyOptions) -> hcm.HttpConnectionManager:
    out = hcm.HttpConnectionManager(
        stat_prefix=chain.name.replace("/", "_"),
        codec_type=hcm.HttpConnectionManager.AUTO,
        use_remote_address=wrappers_pb2.BoolValue(value=True),
        xff_num_trusted_hops=opts.xff_num_trusted_hops,
        strip_matching_host_port=True,
        upgrade_configs=[hcm.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        http2_protocol_options=protocol_pb2.Http2ProtocolOptions(allow_connect=True),
        # the router adds no x-envoy-* headers of its own (x-envoy-upstream-service-time to
        # the client, x-envoy-expected-rq-timeout-ms to the pod): proxy internals neither side
        # asked for, and per-request work (docs/gateway.md, "What a request costs")
        http_filters=[hcm.HttpFilter(name="envoy.filters.http.router", typed_config=_any(
            router_pb2.Router(suppress_envoy_headers=True)))],
    )
    if opts.ads:
        out.rds.CopyFrom(hcm.Rds(config_source=_ads(), route_config_name=chain.route_config))
    else:
        cfg = model.route_config(chain.route_config)
        assert cfg is not None
        out.route_config.CopyFrom(route_configuration(cfg))
    return out


def _tls(chain: FilterChain, opts: ProxyOptions) -> base_pb2.TransportSocket:
    common = tls_pb2.CommonTlsContext(alpn_protocols=["h2", "http/1.1"])
    for name in chain.certificates:
        sds = secret_pb2.SdsSecretConfig(name=name)
        if opts.ads:
            sds.sds_config.CopyFrom(_ads())
        common.tls_certificate_sds_secret_configs.append(sds)
    ctx = tls_pb2.DownstreamTlsContext(common_tls_context=common)
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=_any(ctx))


def listener(lis: ProxyListener, model: ProxyModel, opts: ProxyOptions) -> listener_pb2.Listener:
    out = listener_pb2.Listener(
        name=lis.name,
        address=_address(lis.address, lis.port),
        freebind=wrappers_pb2.BoolValue(value=True),
    )
    if opts.proxy_protocol:
        # behind an LB tier, a few long-lived connections carry everything: the kernel's
        # SO_REUSEPORT hash can put most of them on one worker and leave the others idle;
        # exact balancing hands each new connection to the least loaded worker (a lock per
        # accept, cheap at the rate an LB tier opens connections)
        out.connection_balance_config.exact_balance.SetInParent()
        out.listener_filters.append(lc.ListenerFilter(
            name="envoy.filters.listener.proxy_protocol",
            typed_config=_any(proxy_protocol_pb2.ProxyProtocol())))
    if lis.protocol == "HTTPS":
        out.listener_filters.append(lc.ListenerFilter(
            name="envoy.filters.listener.tls_inspector",
            typed_config=_any(tls_inspector_pb2.TlsInspector())))
    for chain in lis.filter_chains:
        fc = lc.FilterChain(name=chain.name, filters=[lc.Filter(
            name="envoy.filters.network.http_connection_manager",
            typed_config=_any(_connection_manager(chain, model, opts)))])
        if chain.server_names:
            fc.filter_chain_match.server_names.extend(chain.server_names)
        if lis.protocol == "HTTPS":
            fc.transport_socket.CopyFrom(_tls(chain, opts))
        out.filter_chains.append(fc)
    return out


def load_assignment(cl: Cluster) -> endpoint_pb2.ClusterLoadAssignment:
    lb = [
        ec.LbEndpoint(
            endpoint=ec.Endpoint(address=_address(e.address, e.port)),
            health_status=health_check_pb2.DRAINING if e.draining else health_check_pb2.HEALTHY,
        )
        for e in cl.endpoints
    ]
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cl.name,
        endpoints=[ec.LocalityLbEndpoints(lb_endpoints=lb)] if lb else [],
    )


def cluster(cl: Cluster, opts: ProxyOptions) -> cluster_pb2.Cluster:
    http1 = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
            http_protocol_options=protocol_pb2.Http1ProtocolOptions()))
    limits = circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=wrappers_pb2.UInt32Value(value=100_000),
        max_pending_requests=wrappers_pb2.UInt32Value(value=100_000),
        max_requests=wrappers_pb2.UInt32Value(value=100_000),
    )
    out = cluster_pb2.Cluster(
        name=cl.name,
        connect_timeout=_duration(opts.connect_timeout),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        circuit_breakers=circuit_breaker_pb2.CircuitBreakers(thresholds=[limits]),
        typed_extension_protocol_options={
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _any(http1)},
    )
    if opts.ads:
        out.type = cluster_pb2.Cluster.EDS
        out.eds_cluster_config.CopyFrom(cluster_pb2.Cluster.EdsClusterConfig(eds_config=_ads()))
    else:
        out.type = cluster_pb2.Cluster.STATIC
        out.load_assignment.CopyFrom(load_assignment(cl))
    return out


def secret(cert: TlsCertificate) -> secret_pb2.Secret:
    return secret_pb2.Secret(name=cert.name, tls_certificate=common_pb2.TlsCertificate(
        certificate_chain=base_pb2.DataSource(inline_string=cert.certificate_chain),
        private_key=base_pb2.DataSource(inline_string=cert.private_key),
    ))


def render(model: ProxyModel, opts: ProxyOptions | None = None) -> dict[str, dict[str, Message]]:
    """type URL -> resource name -> resource, for every type (possibly empty)."""
    opts = opts or ProxyOptions()
    return {
        CLUSTER: {c.name: cluster(c, opts) for c in model.clusters},
        ENDPOINT: {c.name: load_assignment(c) for c in model.clusters},
        SECRET: {c.name: secret(c) for c in model.certificates},
        LISTENER: {lis.name: listener(lis, model, opts) for lis in model.listeners},
        ROUTE: {r.name: route_configuration(r) for r in model.route_configs},
    }


def resource_bytes(resources: Mapping[str, Message]) -> dict[str, bytes]:
    """Deterministic serialisation per resource name (versions hash these)."""
    return {name: msg.SerializeToString(deterministic=True) for name, msg in resources.items()}
