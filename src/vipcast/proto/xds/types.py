"""xDS resource type URLs, and the order a make-before-break update sends them in (clusters
and secrets before the listeners and routes that name them)."""

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
TYPE_ORDER = (CLUSTER, ENDPOINT, SECRET, LISTENER, ROUTE)
#: types subscribed as a wildcard (all resources), not by name
WILDCARD = frozenset({LISTENER, CLUSTER})
