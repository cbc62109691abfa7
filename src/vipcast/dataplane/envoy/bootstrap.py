"""Envoy bootstraps (pure): the ADS one the node's Envoy starts with, and a static one holding
a whole rendered model (every resource inline), which ``envoy --mode validate`` can check.
"""

from __future__ import annotations

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import (
    address_pb2,
    base_pb2,
    config_source_pb2,
    grpc_service_pb2,
    protocol_pb2,
)
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import duration_pb2, json_format

from vipcast.core.gateway.model import ProxyModel
from vipcast.dataplane.envoy.resources import (
    ProxyOptions,
    _any,
    cluster,
    listener,
    secret,
)

XDS_CLUSTER = "vipcast-xds"


def _admin(port: int) -> bootstrap_pb2.Admin:
    return bootstrap_pb2.Admin(address=address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)))


def ads_bootstrap(node: str, xds_socket: str, admin_port: int) -> bootstrap_pb2.Bootstrap:
    """Envoy fetches everything over ADS from the gRPC server on the unix socket."""
    ads = config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3)
    h2 = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
            http2_protocol_options=protocol_pb2.Http2ProtocolOptions()))
    xds = cluster_pb2.Cluster(
        name=XDS_CLUSTER,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration_pb2.Duration(seconds=1),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=XDS_CLUSTER,
            endpoints=[ec.LocalityLbEndpoints(lb_endpoints=[ec.LbEndpoint(
                endpoint=ec.Endpoint(address=address_pb2.Address(
                    pipe=address_pb2.Pipe(path=xds_socket))))])]),
        typed_extension_protocol_options={
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _any(h2)},
    )
    return bootstrap_pb2.Bootstrap(
        node=base_pb2.Node(id=node, cluster="vipcast"),
        admin=_admin(admin_port),
        dynamic_resources=bootstrap_pb2.Bootstrap.DynamicResources(
            ads_config=config_source_pb2.ApiConfigSource(
                api_type=config_source_pb2.ApiConfigSource.GRPC,
                transport_api_version=config_source_pb2.V3,
                grpc_services=[grpc_service_pb2.GrpcService(
                    envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=XDS_CLUSTER))],
                set_node_on_first_message_only=True,
            ),
            cds_config=ads,
            lds_config=ads,
        ),
        static_resources=bootstrap_pb2.Bootstrap.StaticResources(clusters=[xds]),
    )


def static_bootstrap(model: ProxyModel, opts: ProxyOptions,
                     admin_port: int = 0) -> bootstrap_pb2.Bootstrap:
    """The whole model inline (routes in the listeners, endpoints in the clusters)."""
    inline = ProxyOptions(opts.xff_num_trusted_hops, opts.proxy_protocol,
                          opts.connect_timeout, ads=False)
    return bootstrap_pb2.Bootstrap(
        node=base_pb2.Node(id=model.node, cluster="vipcast"),
        admin=_admin(admin_port),
        static_resources=bootstrap_pb2.Bootstrap.StaticResources(
            listeners=[listener(lis, model, inline) for lis in model.listeners],
            clusters=[cluster(c, inline) for c in model.clusters],
            secrets=[secret(c) for c in model.certificates],
        ),
    )


def to_json(bootstrap: bootstrap_pb2.Bootstrap) -> str:
    return json_format.MessageToJson(bootstrap, sort_keys=True, indent=1)
