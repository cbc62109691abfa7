"""BFD sessions derived from BGPPeer objects, and the on_down hook the speaker uses."""

from __future__ import annotations

import asyncio
import socket

from bfdlab import MutableSocket

from vipcast.proto.bfd import ControlPacket, Diag, SessionConfig, State, StateChanged
from vipcast.proto.bfd.constants import DEFAULT_RECOVERY_S
from vipcast.runtime.bfd.bgp import BfdPeer, BgpBfd, bfd_peers
from vipcast.runtime.bfd.manager import BfdManager
from vipcast.spec.load import Spec, load_documents

API = "vipcast.io/v1beta1"


def spec_for(peer_ip: str, local_ip: str, recovery_ms: int | None = None) -> Spec:
    profile: dict[str, object] = {"receiveInterval": 100, "transmitInterval": 100,
                                  "detectMultiplier": 3}  # fmt: skip
    if recovery_ms is not None:
        profile["recoveryTimeout"] = recovery_ms
    docs: list[tuple[str, object]] = [
        ("t", {"apiVersion": API, "kind": "BFDProfile", "metadata": {"name": "fast"},
               "spec": profile}),
        ("t", {"apiVersion": API, "kind": "BGPPeer", "metadata": {"name": "router"},
               "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": peer_ip,
                        "sourceAddress": local_ip, "bfdProfile": "fast"}}),
        ("t", {"apiVersion": API, "kind": "BGPPeer", "metadata": {"name": "plain"},
               "spec": {"myASN": 64512, "peerASN": 64501, "peerAddress": "192.0.2.99"}}),
    ]  # fmt: skip
    return load_documents(docs)


def binding_and_router() -> tuple[BgpBfd, list[tuple[str, Diag]], BfdManager, list[MutableSocket]]:
    """The node's BFD-for-BGP binding whose drops are recorded (peer, diag) and reported back
    as BGP leaving Established, as the speaker does; a router whose sockets can be muted."""
    dropped: list[tuple[str, Diag]] = []
    muted: list[MutableSocket] = []

    def drop(name: str, change: StateChanged) -> None:
        dropped.append((name, change.diag))
        node.bgp_changed(name, False)  # what the speaker reports while it drops

    def router_socket(family: int) -> socket.socket:
        muted.append(MutableSocket(family, socket.SOCK_DGRAM))
        return muted[-1]

    node = BgpBfd(BfdManager(), on_down=drop)
    return node, dropped, BfdManager(socket_factory=router_socket), muted


def test_bfd_peers_from_spec() -> None:
    spec = spec_for("192.0.2.1", "192.0.2.10")
    (peer,) = bfd_peers(spec, ["router", "plain", "absent"])
    assert peer == BfdPeer(
        name="router",
        address="192.0.2.1",
        local="192.0.2.10",
        config=SessionConfig(desired_min_tx_us=100_000, required_min_rx_us=100_000),
    )
    assert bfd_peers(spec, ["plain"]) == ()


def test_down_callback_names_the_bgp_peer(loopback_pair: tuple[str, str]) -> None:
    node_ip, router_ip = loopback_pair
    fast = SessionConfig(desired_min_tx_us=100_000, required_min_rx_us=100_000)

    async def main() -> None:
        dropped: list[tuple[str, StateChanged]] = []
        node = BgpBfd(BfdManager(), on_down=lambda name, change: dropped.append((name, change)))
        muted: list[MutableSocket] = []

        def router_socket(family: int) -> socket.socket:
            muted.append(MutableSocket(family, socket.SOCK_DGRAM))
            return muted[-1]

        router = BfdManager(socket_factory=router_socket)
        try:
            (peer,) = bfd_peers(spec_for(router_ip, node_ip), ["router"])
            # no session before the peer's BGP session is Established
            assert node.configure([peer]) == []
            assert node.handles() == {} and node.waiting() == ["router"]
            node.bgp_changed("router", True)
            await asyncio.sleep(0)
            assert list(node.handles()) == ["router"] and node.waiting() == []
            assert node.configure([peer]) == []
            router.add_peer(node_ip, router_ip, fast)
            assert await node.handles()["router"].wait_for(State.UP, 10)
            assert node.status()["router"].state in ("UP", "DOWN", "INIT")

            slower = SessionConfig(desired_min_tx_us=200_000, required_min_rx_us=200_000)
            retimed = BfdPeer(peer.name, peer.address, peer.local, slower)
            assert node.configure([retimed]) == ["retimed router"]

            # the router vanishes without a word: its sockets stop sending
            for s in muted:
                s.muted = True
            assert await node.handles()["router"].wait_for(State.DOWN, 5)
            assert [name for name, _ in dropped] == ["router"]
            assert dropped[0][1].diag is Diag.CONTROL_DETECTION_TIME_EXPIRED

            assert node.configure([]) == ["removed router"]
            assert node.handles() == {}
            bad = BfdPeer("x", "192.0.2.1", "198.51.100.250", fast)  # not a local address
            assert node.configure([bad]) == []  # x's BGP is not Established
            node.bgp_changed("x", True)
            (change,) = node.configure([bad])
            assert change.startswith("failed x:") and "x" in node.failed()
        finally:
            node.close()
            router.close()

    asyncio.run(main())


def test_sockets_are_released(loopback_pair: tuple[str, str]) -> None:
    node_ip, router_ip = loopback_pair

    async def main() -> None:
        m = BfdManager()
        m.add_peer(router_ip, node_ip).close()
        # the port is free again: a plain socket can take it
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((node_ip, 3784))
        m.close()

    asyncio.run(main())


def test_the_session_lives_while_bgp_is_established(loopback_pair: tuple[str, str]) -> None:
    """Started at Established, closed (AdminDown to the router) when BGP leaves it; a BFD
    failure while armed asks for the drop once, and the drop's own BGP Down closes it."""
    node_ip, router_ip = loopback_pair
    fast = SessionConfig(desired_min_tx_us=100_000, required_min_rx_us=100_000)

    async def main() -> None:
        node, dropped, router, muted = binding_and_router()
        try:
            (peer,) = bfd_peers(spec_for(router_ip, node_ip), ["router"])
            node.configure([peer])
            theirs = router.add_peer(node_ip, router_ip, fast)
            node.bgp_changed("router", True)
            await asyncio.sleep(0)
            ours = node.handles()["router"]
            assert await ours.wait_for(State.UP, 10)
            assert node.bindings()["router"].name == "ARMED"
            assert node.status()["router"].binding == "ARMED"
            node.bgp_changed("router", False)
            await asyncio.sleep(0)
            assert node.handles() == {} and ours.closed
            assert await theirs.wait_for(State.DOWN, 5)
            assert theirs.session.remote_state is State.ADMIN_DOWN
            # BGP back: a new session (new discriminator) comes up with the router's
            node.bgp_changed("router", True)
            await asyncio.sleep(0)
            again = node.handles()["router"]
            assert again is not ours and await again.wait_for(State.UP, 10)
            # the router goes AdminDown: not a failure, BGP kept
            theirs.session.admin_down(router.now())
            router.pump(theirs)
            assert await again.wait_for(State.DOWN, 5)
            assert dropped == [] and node.kept()["router"].startswith("the remote signalled Admin")
            theirs.session.admin_up(router.now())
            router.pump(theirs)
            assert await again.wait_for(State.UP, 10)
            # the router falls silent: a failure, one drop, and the session is closed
            for sock in muted:
                sock.muted = True
            for _ in range(100):
                if dropped:
                    break
                await asyncio.sleep(0.05)
            assert dropped == [("router", Diag.CONTROL_DETECTION_TIME_EXPIRED)]
            await asyncio.sleep(0)
            assert node.handles() == {} and again.closed
        finally:
            node.close()
            router.close()

    asyncio.run(main())


def _restarted_router_says_down(node_ip: str, router_ip: str, discr: int) -> None:
    """A Down from a new router session (Your Discriminator zero), as after a bfdd restart."""
    packet = ControlPacket(State.DOWN, my_discr=discr, your_discr=0, detect_mult=3,
                           desired_min_tx_us=1_000_000, required_min_rx_us=1_000_000)  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        s.bind((router_ip, 0))
        s.sendto(packet.encode(), (node_ip, 3784))


def test_a_replaced_session_not_back_within_the_recovery_timeout_drops_bgp(
    loopback_pair: tuple[str, str],
) -> None:
    """The profile's recoveryTimeout (here 500 ms) bounds the wait after the router replaced
    an Up session; BFD still not Up then: one drop, as for a path failure. A router that takes
    BFD AdminDown instead is waited for without bound."""
    node_ip, router_ip = loopback_pair
    fast = SessionConfig(desired_min_tx_us=100_000, required_min_rx_us=100_000)

    async def main() -> None:
        node, dropped, router, muted = binding_and_router()
        try:
            (peer,) = bfd_peers(spec_for(router_ip, node_ip, recovery_ms=500), ["router"])
            assert peer.config.recovery_timeout_s == 0.5
            (default,) = bfd_peers(spec_for(router_ip, node_ip), ["router"])
            assert default.config.recovery_timeout_s == DEFAULT_RECOVERY_S
            node.configure([peer])
            theirs = router.add_peer(node_ip, router_ip, fast)
            node.bgp_changed("router", True)
            await asyncio.sleep(0)
            ours = node.handles()["router"]
            assert await ours.wait_for(State.UP, 10)
            assert node.status()["router"].binding == "ARMED"

            # the router takes BFD AdminDown: disabled, no bound (waited 3 bounds here)
            theirs.session.admin_down(router.now())
            router.pump(theirs)
            assert await ours.wait_for(State.DOWN, 5)
            status = node.status()["router"]
            assert (status.binding, status.recovery_left_s) == ("DISABLED", None)
            await asyncio.sleep(1.5)
            assert dropped == [] and node.bindings()["router"].name == "DISABLED"
            # the router talks BFD again: from our Init the wait is bounded (RECOVERING); the
            # default bound here, so a stalled loop cannot turn the handshake into a drop
            assert node.configure([default]) == ["retimed router"]
            theirs.session.admin_up(router.now())
            router.pump(theirs)
            assert await ours.wait_for(State.UP, 10)
            assert node.bindings()["router"].name == "ARMED" and dropped == []
            assert node.configure([peer]) == ["retimed router"]

            # the router's BFD starts over (new discriminator) and then goes quiet: kept first,
            # dropped once the 500 ms bound passes with BFD still not Up
            for sock in muted:
                sock.muted = True
            _restarted_router_says_down(node_ip, router_ip, theirs.session.local_discr ^ 0xFF)
            assert await ours.wait_for(State.DOWN, 5)
            status = node.status()["router"]
            assert status.binding == "RECOVERING" and "replaced" in (status.kept or "")
            # (the countdown, not a time: a stalled process may have used it up)
            assert status.recovery_left_s is not None and status.recovery_left_s <= 0.5
            assert dropped == []
            for _ in range(200):
                if dropped:
                    break
                await asyncio.sleep(0.05)
            assert [name for name, _ in dropped] == ["router"]
            await asyncio.sleep(0)
            assert node.handles() == {} and ours.closed  # BGP left Established: closed
        finally:
            node.close()
            router.close()

    asyncio.run(main())
