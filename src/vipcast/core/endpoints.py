"""Ready endpoints of a Service, and the backends of each of its ports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vipcast.core.desired import Backend
from vipcast.spec import EndpointSlice, Service, ServicePort


@dataclass(frozen=True)
class ReadyEndpoint:
    """One ready endpoint address with the ports its slice publishes."""

    ip: str
    family: int
    node: str | None
    #: (port name, port number, protocol) of the slice
    ports: tuple[tuple[str | None, int | None, str], ...]


def ready_endpoints(slices: Iterable[EndpointSlice]) -> tuple[ReadyEndpoint, ...]:
    """Every ready address of the slices (FQDN slices are ignored), sorted, deduplicated."""
    out: dict[tuple[str, str | None], ReadyEndpoint] = {}
    for s in slices:
        if s.address_type == "FQDN":
            continue
        family = 6 if s.address_type == "IPv6" else 4
        ports = tuple((p.name, p.port, p.protocol) for p in s.ports)
        for ep in s.endpoints:
            if not ep.is_ready:
                continue
            for ip in ep.addresses:
                out.setdefault((ip, ep.node_name), ReadyEndpoint(ip, family, ep.node_name, ports))
    return tuple(out[k] for k in sorted(out, key=lambda k: (k[0], k[1] or "")))


def target_port(port: ServicePort, endpoint: ReadyEndpoint) -> int | None:
    """The endpoint's port for a Service port: matched by name and protocol, as kube-proxy does."""
    for name, number, protocol in endpoint.ports:
        if (name or None) == (port.name or None) and protocol == port.protocol:
            return number
    if not endpoint.ports:  # a hand-written slice without ports: use targetPort or port
        return port.target_port if isinstance(port.target_port, int) else port.port
    return None


def backends(
    service: Service,
    port: ServicePort,
    endpoints: Iterable[ReadyEndpoint],
    family: int,
    node: str,
) -> tuple[Backend, ...]:
    """Backends of ``port`` for a VIP of ``family`` as seen from ``node``."""
    local_only = service.spec.external_traffic_policy == "Local"
    out = []
    numbers: dict[tuple[tuple[str | None, int | None, str], ...], int | None] = {}
    for ep in endpoints:
        if ep.family != family:
            continue
        if ep.ports not in numbers:  # endpoints of one slice share its ports
            numbers[ep.ports] = target_port(port, ep)
        number = numbers[ep.ports]
        if number is None:
            continue
        local = ep.node == node
        if local_only and not local:
            continue
        out.append(Backend(ep.ip, number, ep.node, local=local, ready=True))
    return tuple(sorted(out))
