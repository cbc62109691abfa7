"""BIRD 2 and the weighted-ECMP / drain attributes: the session stays up and they are carried.

BIRD does not weight multipaths by the RFC 10005 link bandwidth community (docs/weighted-ecmp.md);
what matters is that an UPDATE carrying it (and RFC 8326's 65535:0) is accepted, kept with the
route and that a changed value is an UPDATE, not a session reset.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from point_to_point import N4, R4, link

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import BirdConfig, start_bird
from vipcast.lab.netns import Topology, wait_until
from vipcast.proto.bgp.ext_communities import (
    GRACEFUL_SHUTDOWN,
    LinkBandwidth,
    encode_link_bandwidth,
)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 not installed"),
]

PREFIX = "203.0.113.40/32"


def test_link_bandwidth_and_graceful_shutdown_are_carried(
    netlab: Topology, static_speaker: Any
) -> None:
    rtr, node = link(netlab)
    bird = start_bird(rtr, BirdConfig(asn=65000, router_id=R4,
                                      neighbors=(Neighbor(N4, 4200000001, hold_time=9),)),
                      netlab.workdir / "bird")
    speaker = static_speaker(node, netlab.workdir)
    peer = {"name": "r", "address": R4, "local_asn": 4200000001, "peer_asn": 65000,
            "router_id": N4, "hold_time": 9, "connect_retry_time": 2, "idle_hold_time": 0.5}

    def announce(weight: float, gshut: bool) -> int:
        lb = encode_link_bandwidth(LinkBandwidth(23456, weight * 125_000.0))
        attrs = {"extended_communities": [lb],
                 "communities": [GRACEFUL_SHUTDOWN] if gshut else []}
        speaker.configure([peer], {"r": {PREFIX: attrs}})
        return lb

    lb = announce(5, gshut=False)
    bird.wait_established(N4, timeout=60)
    wait_until(lambda: bird.route(PREFIX), timeout=30, what="route in BIRD")

    def carried(value: int) -> bool:
        text = bird.birdc("show", "route", "all", "for", PREFIX).lower()
        # BIRD 2 prints it as an unknown two-octet-AS community: (unknown 0x4, AS, LOW-32-BITS)
        return f"(unknown 0x4, 23456, {value & 0xFFFFFFFF})" in text

    wait_until(lambda: carried(lb), timeout=30, what="link bandwidth carried by BIRD",
               on_timeout=lambda: bird.birdc("show", "route", "all", "for", PREFIX))
    # a new weight and 65535:0: an UPDATE, the session stays up
    lb2 = announce(2, gshut=True)
    wait_until(lambda: carried(lb2), timeout=30, what="new link bandwidth carried")
    path = bird.route(PREFIX)[0]
    assert any(c in ("65535:0", "(65535,0)") for c in path.communities), path
    assert bird.established(N4)
    status = speaker.status()["r"]
    assert status["state"] == "Established"
    assert int(status["notifications_sent"]) == 0
