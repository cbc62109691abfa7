"""The BGP speaker runtime against another vipcast speaker on loopback (127.0.0.x).

Each side is a real asyncio speaker with real sockets; deadlines are generous (the machine is
shared), and every wait ends as soon as its condition holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from vipcast.core.desired import BGPRoute, NodePlan
from vipcast.proto.bgp import RouteAttributes, SessionConfig, State
from vipcast.runtime.bgp.peer import PeerSettings
from vipcast.runtime.bgp.speaker import Speaker, routes_by_peer
from vipcast.runtime.bgp.transport import TransportOptions

LOG = logging.getLogger("test.bgp")
DEADLINE = 20.0


def settings(
    name: str,
    address: str,
    port: int,
    local_asn: int,
    peer_asn: int,
    router_id: str,
    *,
    source: str | None = None,
    passive: bool = False,
    password: str | None = None,
    hold: int = 9,
    graceful_restart: bool = False,
) -> PeerSettings:
    return PeerSettings(
        name=name,
        address=address,
        port=port,
        session=SessionConfig(
            local_asn=local_asn,
            peer_asn=peer_asn,
            router_id=router_id,
            hold_time=hold,
            connect_retry_time=2.0,
            idle_hold_time=0.5,
            passive=passive,
            graceful_restart=graceful_restart,
        ),
        transport=TransportOptions(source_address=source, md5_password=password),
        connect_timeout=2.0,
    )


def to_node(local_asn: int, peer_asn: int, *, password: str | None = None) -> PeerSettings:
    """The router's side: it waits (passive) for "node" at 127.0.0.2."""
    return settings(
        "node", "127.0.0.2", 179, local_asn, peer_asn, "192.0.2.3", passive=True, password=password
    )


def to_router(
    port: int, local_asn: int, peer_asn: int, *, password: str | None = None
) -> PeerSettings:
    """The node's side: from 127.0.0.2 it connects to "rtr", the router's listener at
    127.0.0.3:``port``."""
    return settings(
        "rtr", "127.0.0.3", port, local_asn, peer_asn, "192.0.2.2", source="127.0.0.2",
        password=password,
    )


@asynccontextmanager
async def speaker(listen: tuple[str, int] | None = None) -> AsyncIterator[Speaker]:
    s = Speaker(listen=[listen] if listen else [], log=LOG, backoff_base=0.2)
    await s.start()
    try:
        yield s
    finally:
        await s.stop("test over")


def established(name: str) -> Callable[[Speaker], bool]:
    return lambda s: name in s.peers() and s.peers()[name].state == State.ESTABLISHED


async def test_session_routes_and_withdraw() -> None:
    async with speaker(("127.0.0.3", 0)) as router, speaker() as node:
        port = router.listen_ports[0]
        router.configure([to_node(65000, 4200000001)])
        node.configure([to_router(port, 4200000001, 65000)])
        assert await node.wait_for(established("rtr"), DEADLINE)
        assert await router.wait_for(established("node"), DEADLINE)

        routes = [
            BGPRoute(prefix=f"198.18.0.{i}/32", peers=("rtr",), communities=(65000 << 16 | 1,))
            for i in range(1, 101)
        ]
        routes.append(BGPRoute(prefix="2001:db8::10/128", peers=("rtr", "absent")))
        plan = NodePlan(node="n1", bgp=tuple(routes))
        await node.apply(plan)

        def received(n: int) -> Callable[[Speaker], bool]:
            return lambda s: s.peers()["node"].status().prefixes_received >= n

        assert await router.wait_for(received(100), DEADLINE)
        status = node.status()[0]
        assert status.state == "Established"
        assert status.prefixes_advertised >= 100
        updates_before = status.updates_sent

        # the same plan again sends nothing
        await node.apply(plan)
        await asyncio.sleep(0.3)
        assert node.status()[0].updates_sent == updates_before

        # a service goes away: its prefix is withdrawn
        await node.apply(NodePlan(node="n1", bgp=plan.bgp[1:]))
        assert await node.wait_for(
            lambda s: s.status()[0].prefixes_advertised == status.prefixes_advertised - 1,
            DEADLINE,
        )
        assert await router.wait_for(
            lambda s: s.peers()["node"].status().updates_received > 1, DEADLINE
        )


async def test_clean_stop_sends_admin_shutdown() -> None:
    async with speaker(("127.0.0.3", 0)) as router:
        port = router.listen_ports[0]
        router.configure([to_node(65000, 65001)])
        async with speaker() as node:
            node.configure([to_router(port, 65001, 65000)])
            assert await router.wait_for(established("node"), DEADLINE)
        # the node stopped: the router got a NOTIFICATION Cease / Administrative Shutdown
        assert await router.wait_for(
            lambda s: s.peers()["node"].status().notifications_received >= 1, DEADLINE
        )
        error = router.peers()["node"].status().last_error or ""
        assert "CEASE/2" in error, error


async def test_ibgp_session_establishes() -> None:
    async with speaker(("127.0.0.3", 0)) as router, speaker() as node:
        port = router.listen_ports[0]
        router.configure([to_node(64512, 64512)])
        node.configure([to_router(port, 64512, 64512)])
        assert await node.wait_for(established("rtr"), DEADLINE)
        node.set_routes({"rtr": {"203.0.113.7/32": RouteAttributes(local_pref=300)}})
        assert await router.wait_for(
            lambda s: s.peers()["node"].status().prefixes_received >= 1, DEADLINE
        )


async def test_md5_mismatch_never_establishes_and_match_does() -> None:
    async with speaker(("127.0.0.3", 0)) as router, speaker() as node:
        port = router.listen_ports[0]
        router.configure([to_node(65000, 65001, password="s3cret")])
        node.configure([to_router(port, 65001, 65000, password="wrong")])
        assert not await node.wait_for(established("rtr"), 3.0)
        node.configure([to_router(port, 65001, 65000, password="s3cret")])
        assert await node.wait_for(established("rtr"), DEADLINE)


async def test_collision_leaves_one_session() -> None:
    async with speaker(("127.0.0.3", 0)) as a, speaker(("127.0.0.2", 0)) as b:
        port_a, port_b = a.listen_ports[0], b.listen_ports[0]
        # both sides connect actively to each other's listener at the same time
        a.configure(
            [settings("b", "127.0.0.2", port_b, 65000, 65001, "192.0.2.3", source="127.0.0.3")]
        )
        b.configure(
            [settings("a", "127.0.0.3", port_a, 65001, 65000, "192.0.2.2", source="127.0.0.2")]
        )
        assert await a.wait_for(established("b"), DEADLINE)
        assert await b.wait_for(established("a"), DEADLINE)
        await asyncio.sleep(1.0)
        assert a.peers()["b"].state == State.ESTABLISHED
        assert b.peers()["a"].state == State.ESTABLISHED


async def test_reconnects_after_peer_restart() -> None:
    async with speaker() as node:
        async with speaker(("127.0.0.3", 0)) as router:
            port = router.listen_ports[0]
            router.configure([to_node(65000, 65001)])
            node.configure([to_router(port, 65001, 65000)])
            assert await node.wait_for(established("rtr"), DEADLINE)
        assert await node.wait_for(lambda s: s.peers()["rtr"].state != State.ESTABLISHED, DEADLINE)
        async with speaker(("127.0.0.3", port)) as router:
            router.configure([to_node(65000, 65001)])
            assert await node.wait_for(established("rtr"), DEADLINE)


def test_routes_by_peer_groups_plan_routes() -> None:
    routes = (
        BGPRoute(prefix="192.0.2.1/32", peers=("a", "b"), local_pref=200),
        BGPRoute(prefix="192.0.2.2/32", peers=("b",), large_communities=((1, 2, 3),)),
    )
    table = routes_by_peer(routes)
    assert set(table) == {"a", "b"}
    assert table["a"] == {"192.0.2.1/32": RouteAttributes(local_pref=200)}
    assert table["b"]["192.0.2.2/32"].large_communities == ((1, 2, 3),)


async def test_big_change_goes_out_head_first_and_whole() -> None:
    """5,000 new prefixes at once: the first part leaves before the rest is encoded (two
    writes), and the peer gets every prefix exactly once, with the right attributes."""
    async with speaker(("127.0.0.3", 0)) as router, speaker() as node:
        port = router.listen_ports[0]
        router.configure([to_node(65000, 4200000001)])
        node.configure([to_router(port, 4200000001, 65000)])
        assert await node.wait_for(established("rtr"), DEADLINE)
        kept = {"203.0.113.1/32": RouteAttributes(communities=(7,))}
        node.set_routes({"rtr": kept})
        assert await router.wait_for(
            lambda s: s.peers()["node"].status().prefixes_received == 1, DEADLINE
        )
        before = node.status()[0].updates_sent
        many = {f"198.18.{i >> 8}.{i & 255}/32": RouteAttributes() for i in range(5000)}
        node.set_routes({"rtr": {**kept, **many}})
        assert await router.wait_for(
            lambda s: s.peers()["node"].status().prefixes_received == 5001, DEADLINE
        )
        status = node.status()[0]
        assert status.prefixes_advertised == 5001
        # the kept route was not sent again; 5,000 /32s in 4,096-byte UPDATEs: a head part
        # (1,000 prefixes, 2 UPDATEs) then the rest (4,000, 5 UPDATEs)
        assert status.updates_sent - before == 2 + 5, status
