"""Representative NAT rule sets for render snapshots and kernel tests."""

from __future__ import annotations

from vipcast.core.desired import Backend, NatRule

CLUSTER_WEB = NatRule(
    service="default/web",
    vip="203.0.113.10",
    port=80,
    protocol="TCP",
    backends=(
        Backend("192.0.2.2", 8080, "n1", local=True),
        Backend("192.0.2.6", 8080, "n2", local=False),
        Backend("192.0.2.10", 8080, "n3", local=False, ready=False),
    ),
    traffic_policy="Cluster",
)
LOCAL_WEB = NatRule(
    service="shop/front",
    vip="203.0.113.11",
    port=443,
    protocol="TCP",
    backends=(
        Backend("192.0.2.2", 8443, "n1", local=True),
        Backend("192.0.2.6", 8443, "n2", local=False),
    ),
    traffic_policy="Local",
)
RESTRICTED = NatRule(
    service="ops/admin",
    vip="203.0.113.12",
    port=22,
    protocol="TCP",
    backends=(Backend("192.0.2.6", 22, "n2"),),
    source_ranges=("198.51.100.0/25", "198.51.100.128/25", "198.51.100.7/32", "2001:db8::/64"),
)
DNS_V6 = NatRule(
    service="kube-system/dns",
    vip="2001:db8:f::10",
    port=53,
    protocol="UDP",
    backends=(
        Backend("2001:db8:1::0035", 5353, "n1", local=True),
        Backend("2001:db8:2::35", 5353, "n2", local=False),
    ),
)
SCTP = NatRule(
    service="tel/sig",
    vip="203.0.113.13",
    port=3868,
    protocol="SCTP",
    backends=(Backend("192.0.2.2", 3868, "n1", local=True),),
)
NO_BACKENDS = NatRule(
    service="default/empty", vip="203.0.113.14", port=80, protocol="TCP", backends=()
)

MIXED = (CLUSTER_WEB, LOCAL_WEB, RESTRICTED, DNS_V6, SCTP, NO_BACKENDS)

SNAPSHOT_PLANS: dict[str, tuple[NatRule, ...]] = {
    "empty": (),
    "cluster_web": (CLUSTER_WEB,),
    "local_web": (LOCAL_WEB,),
    "restricted": (RESTRICTED,),
    "dns_v6": (DNS_V6,),
    "mixed": MIXED,
}


def scale_rules(services: int, backends: int, *, bump: int = 0) -> tuple[NatRule, ...]:
    """``services`` Cluster services with ``backends`` remote backends each (198.18.0.0/15).

    ``bump`` changes the port of the first backend of the first service (a one-backend change).
    """
    rules = []
    for s in range(services):
        bs = []
        for b in range(backends):
            n = s * backends + b
            port = 8080 + (bump if s == 0 and b == 0 else 0)
            bs.append(Backend(f"198.19.{n // 256}.{n % 256}", port, f"n{b}", local=b == 0))
        rules.append(
            NatRule(
                service=f"ns{s % 7}/svc{s}",
                vip=f"198.18.{s // 256}.{s % 256}",
                port=80,
                protocol="TCP",
                backends=tuple(bs),
            )
        )
    return tuple(rules)
