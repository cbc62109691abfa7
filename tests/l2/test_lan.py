"""The L2 responder on a real (namespaced) LAN: three agents, a bridge, a client."""

from __future__ import annotations

import pytest
from l2_lan import VIP4, VIP6, L2Lan, answers

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def test_client_resolves_vip_to_owner_and_only_owner_answers(lan: L2Lan) -> None:
    lan.start_all()
    capture, pcap = lan.start_capture()
    assert lan.resolve(VIP4) == lan.macs["n1"]
    assert lan.resolve(VIP6) == lan.macs["n1"]
    assert set(lan.request(VIP4, count=5)) == {"n1"}
    assert set(lan.request(VIP6, count=5)) == {"n1"}
    capture.stop()
    seen = answers(pcap)
    assert {a.ip for a in seen if not a.gratuitous} == {VIP4, VIP6}
    assert {a.mac for a in seen} == {lan.macs["n1"]}
