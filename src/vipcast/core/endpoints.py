"""Ready endpoints of a Service, and the backends of each of its ports.

Plans of large clusters build tens of thousands of these, so the intermediate values are plain
tuples (one allocation each) and the backends of a port are resolved once per service and
family (:class:`PortBackends`) and then only specialised per node.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import NamedTuple

from vipcast.core.desired import Backend
from vipcast.spec import EndpointSlice, Service, ServicePort

#: (port name, port number, protocol) of a slice's ports
SlicePorts = tuple[tuple[str | None, int | None, str], ...]


class ReadyEndpoint(NamedTuple):
    """One ready endpoint address with the ports its slice publishes."""

    ip: str
    family: int
    node: str | None
    ports: SlicePorts


def _endpoint_order(key: tuple[str, str | None]) -> tuple[str, str]:
    return key[0], key[1] or ""


#: ReadyEndpoint from a tuple of its fields, without the Python-level ``__new__`` of a NamedTuple
#: (one per endpoint of every Service: 20,000 in a plan of 10,000 Services)
_endpoint = partial(tuple.__new__, ReadyEndpoint)


def ready_endpoints(slices: Iterable[EndpointSlice]) -> tuple[ReadyEndpoint, ...]:
    """Every ready address of the slices (FQDN slices are ignored), sorted, deduplicated."""
    out: dict[tuple[str, str | None], ReadyEndpoint] = {}
    for s in slices:
        address_type = s.address_type
        if address_type == "FQDN":
            continue
        family = 6 if address_type == "IPv6" else 4
        ports = tuple((p.name, p.port, p.protocol) for p in s.ports)
        for ep in s.endpoints:
            if not ep.is_ready:
                continue
            node = ep.node_name
            for ip in ep.addresses:
                key = (ip, node)
                if key not in out:
                    out[key] = _endpoint((ip, family, node, ports))
    if len(out) < 2:
        return tuple(out.values())
    try:  # the keys' own order is (ip, node or "") unless a node is unset where ips tie
        keys = sorted(out)
    except TypeError:
        keys = sorted(out, key=_endpoint_order)
    return tuple(map(out.__getitem__, keys))


def any_ready(slices: Iterable[EndpointSlice]) -> bool:
    """Whether :func:`ready_endpoints` of the slices is not empty, without making it."""
    for s in slices:
        if s.address_type == "FQDN":
            continue
        for ep in s.endpoints:
            if ep.addresses and ep.is_ready:
                return True
    return False


def target_port(port: ServicePort, endpoint: ReadyEndpoint) -> int | None:
    """The endpoint's port for a Service port: matched by name and protocol, as kube-proxy does."""
    return _target(port, endpoint.ports)


def _target(port: ServicePort, ports: SlicePorts) -> int | None:
    wanted = port.name or None
    for name, number, protocol in ports:
        if (name or None) == wanted and protocol == port.protocol:
            return number
    if not ports:  # a hand-written slice without ports: use targetPort or port
        return port.target_port if isinstance(port.target_port, int) else port.port
    return None


def _backend_order(row: tuple[str, int, str | None]) -> tuple[str, int, bool, str]:
    # Backend's own order is (ip, port, node, ...); None sorts before any node name here
    # instead of failing to compare
    return row[0], row[1], row[2] is not None, row[2] or ""


class PortBackends:
    """The backends of one Service port for VIPs of one family, resolved once.

    ``for_node(node)`` gives what ``backends(...)`` gives for that node, sharing the tuple
    built for every node that runs none of the endpoints.
    """

    __slots__ = ("_local_only", "_nodes", "_remote", "_rows")

    def __init__(
        self, service: Service, port: ServicePort, endpoints: Iterable[ReadyEndpoint], family: int
    ) -> None:
        rows: list[tuple[str, int, str | None]] = []
        numbers: dict[SlicePorts, int | None] = {}
        for ip, ep_family, node, ports in endpoints:
            if ep_family != family:
                continue
            if ports in numbers:  # endpoints of one slice share its ports
                number = numbers[ports]
            else:
                number = numbers[ports] = _target(port, ports)
            if number is not None:
                rows.append((ip, number, node))
        if len(rows) > 1:
            rows.sort(key=_backend_order)
        self._rows = rows
        self._local_only = service.spec.external_traffic_policy == "Local"
        self._nodes = frozenset(row[2] for row in rows if row[2] is not None)
        self._remote: tuple[Backend, ...] | None = None

    @property
    def nodes(self) -> frozenset[str]:
        """The nodes running the backends: ``for_node`` of any other node is the same tuple."""
        return self._nodes

    def for_node(self, node: str) -> tuple[Backend, ...]:
        if node in self._nodes:
            if self._local_only:
                return tuple(Backend(ip, number, at, True, True)
                             for ip, number, at in self._rows if at == node)
            # the node's own endpoints are local; the others are the shared remote values
            remote_all = zip(self._rows, self._remote_all(), strict=True)
            return tuple(Backend(ip, number, at, True, True) if at == node else remote
                         for (ip, number, at), remote in remote_all)
        if self._local_only:
            return ()
        return self._remote_all()

    def _remote_all(self) -> tuple[Backend, ...]:
        """Every backend as a remote one (what a node running none of them gets), built once."""
        if self._remote is None:
            self._remote = tuple(
                Backend(ip, number, at, False, True) for ip, number, at in self._rows
            )
        return self._remote


def backends(
    service: Service,
    port: ServicePort,
    endpoints: Iterable[ReadyEndpoint],
    family: int,
    node: str,
) -> tuple[Backend, ...]:
    """Backends of ``port`` for a VIP of ``family`` as seen from ``node``."""
    return PortBackends(service, port, endpoints, family).for_node(node)
