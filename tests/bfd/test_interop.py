"""vipcast BFD against FRR 8.4 bfdd and BIRD 2 in network namespaces (100 ms x 3).

The router's interface stays up when the node's bridge port is cut, so the router can only
learn of the failure from BFD. Bounds are generous (shared, noisy machine); figures go to
``bench/bfd_failover.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bfdlab import (
    NODE_IP,
    NODE_IP6,
    ROUTER_IP,
    ROUTER_IP6,
    BfdThread,
    build_lan,
    cut,
    frr_add_peer,
    frr_peer,
    frr_status,
    restore,
    start_bird,
    start_frr_bfd,
)

from vipcast.lab.netns import Netns, Topology, wait_until
from vipcast.proto.bfd import Diag, SessionConfig, State

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]

FAST = SessionConfig(desired_min_tx_us=100_000, required_min_rx_us=100_000, detect_mult=3)
FAST_MH = SessionConfig(
    desired_min_tx_us=100_000, required_min_rx_us=100_000, detect_mult=3, multihop=True
)
# generous: detection is 300 ms; the polling of vtysh/birdc and a busy machine add the rest
def _link_local(ns: Netns) -> str:
    return next(a.split("/")[0] for a in ns.addresses("eth0") if a.startswith("fe80:"))


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "ipv6-link-local"])
def test_frr_bfdd_single_hop(
    netlab: Topology, bfd_thread_factory: Callable[[str | None], BfdThread], family: str
) -> None:
    router_ip, node_ip = (ROUTER_IP, NODE_IP) if family == "ipv4" else (ROUTER_IP6, NODE_IP6)
    lan = build_lan(netlab)
    if family == "ipv6-link-local":
        router_ip, node_ip = _link_local(lan.router), _link_local(lan.node)
    frr = start_frr_bfd(lan, netlab.workdir)
    frr_add_peer(frr, node_ip, router_ip)
    node = bfd_thread_factory(lan.node.name)
    handle = node.add_peer(router_ip, node_ip, FAST, interface="eth0")

    wait_until(lambda: frr_status(frr, node_ip) == "up", timeout=20, what="FRR sees Up")
    wait_until(lambda: handle.state is State.UP, timeout=10, what="vipcast Up")
    # negotiated 100 ms both ways once the Poll Sequences are done
    wait_until(
        lambda: node.call(
            lambda: handle.status().tx_interval_ms == 100 and not handle.session.polling
        ),
        timeout=10,
        what="vipcast at 100 ms",
    )
    peer = frr_peer(frr, node_ip)
    assert peer.get("remote-receive-interval") == 100, peer
    assert peer.get("remote-transmit-interval") == 100, peer
    assert peer.get("remote-detect-multiplier") == 3, peer
    assert node.call(lambda: handle.status().detection_time_ms) == 300

    cut(lan)
    # behaviour: the router declares the node down by detection time (the cut link cannot carry
    # an AdminDown); how fast is bench/bfd_failover.py's figure, the deadline is only generous
    wait_until(lambda: frr_status(frr, node_ip) == "down", timeout=10, interval=0.02,
               what="FRR declares the node down")
    assert "detection time expired" in str(frr_peer(frr, node_ip).get("diagnostic", "")).lower()
    # read on the session's own loop: the state changes before the callbacks run (same turn),
    # so a read from this thread could see Down with ``downs`` still empty
    wait_until(lambda: node.call(lambda: handle.state is State.DOWN), timeout=5,
               what="vipcast Down")  # fmt: skip
    assert node.downs and node.downs[0][2].diag is Diag.CONTROL_DETECTION_TIME_EXPIRED

    restore(lan)
    wait_until(lambda: frr_status(frr, node_ip) == "up", timeout=20, what="FRR Up again")
    wait_until(lambda: handle.state is State.UP, timeout=10, what="vipcast Up again")

    # the router shuts the peer: vipcast hears AdminDown, goes Down, and does not call on_down
    downs_before = len(node.downs)
    frr.configure("bfd", f"peer {node_ip} local-address {router_ip} interface eth0", "shutdown",
                  daemon="bfdd")  # fmt: skip
    wait_until(lambda: node.call(lambda: handle.state is State.DOWN), timeout=10,
               what="vipcast Down (AdminDown)")  # fmt: skip
    assert handle.session.remote_state is State.ADMIN_DOWN
    assert len(node.downs) == downs_before
    assert node.changes[-1][2].remote_state is State.ADMIN_DOWN  # the change was delivered


def test_frr_bfdd_multihop(
    netlab: Topology, bfd_thread_factory: Callable[[str | None], BfdThread]
) -> None:
    lan = build_lan(netlab)
    frr = start_frr_bfd(lan, netlab.workdir)
    frr_add_peer(frr, NODE_IP, ROUTER_IP, multihop=True)
    node = bfd_thread_factory(lan.node.name)
    handle = node.add_peer(ROUTER_IP, NODE_IP, FAST_MH, multihop=True)
    wait_until(lambda: frr_status(frr, NODE_IP) == "up", timeout=20, what="FRR multihop Up")
    wait_until(lambda: handle.state is State.UP, timeout=10, what="vipcast multihop Up")
    cut(lan)
    wait_until(lambda: frr_status(frr, NODE_IP) == "down", timeout=10, interval=0.02,
               what="FRR multihop down")
    assert "detection time expired" in str(frr_peer(frr, NODE_IP).get("diagnostic", "")).lower()


@pytest.mark.parametrize("multihop", [False, True], ids=["single-hop", "multihop"])
def test_bird_bfd(
    netlab: Topology, bfd_thread_factory: Callable[[str | None], BfdThread], multihop: bool
) -> None:
    lan = build_lan(netlab)
    bird = start_bird(lan, netlab.workdir, [(NODE_IP, ROUTER_IP, multihop)])
    node = bfd_thread_factory(lan.node.name)
    # BIRD sends multihop BFD with TTL 64, so the node accepts any TTL there (RFC 5883 leaves
    # the check to configuration); single hop still demands 255
    cfg = SessionConfig(desired_min_tx_us=100_000, required_min_rx_us=100_000, detect_mult=3,
                        multihop=True, minimum_ttl=1) if multihop else FAST  # fmt: skip
    handle = node.add_peer(ROUTER_IP, NODE_IP, cfg, multihop=multihop,
                           interface=None if multihop else "eth0")  # fmt: skip
    wait_until(lambda: bird.state(NODE_IP) == "Up", timeout=20, what="BIRD sees Up",
               on_timeout=lambda: bird.birdc("show bfd sessions"))  # fmt: skip
    wait_until(lambda: handle.state is State.UP, timeout=10, what="vipcast Up")
    wait_until(
        lambda: node.call(
            lambda: handle.status().tx_interval_ms == 100 and not handle.session.polling
        ),
        timeout=10,
        what="vipcast at 100 ms",
    )
    cut(lan)
    # the cut link carries no AdminDown: only BIRD's detection timer can take it Down
    wait_until(lambda: bird.state(NODE_IP) == "Down", timeout=10, interval=0.02,
               what="BIRD declares the node down")
    wait_until(lambda: handle.state is State.DOWN, timeout=5, what="vipcast Down")
    restore(lan)
    wait_until(lambda: bird.state(NODE_IP) == "Up", timeout=20, what="BIRD Up again")
    wait_until(lambda: handle.state is State.UP, timeout=10, what="vipcast Up again")
