"""The L2 responder on a real (namespaced) LAN: three agents, a bridge, a client."""

from __future__ import annotations

import time

import pytest
from l2_lan import VIP4, VIP6, L2Lan, answers, parse_probe

from vipcast.lab.netns import Process, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def answered_for(probe: Process, seconds: float) -> None:
    """Until the probe has been answered for ``seconds`` of its own run: the act that follows
    falls inside its window with traffic before it, however late a loaded machine started it
    (a fixed sleep after the spawn could end before the probe sent anything)."""
    wait_until(lambda: any(r.recv >= result.start + seconds
                           for result in [parse_probe(probe.log_text())]
                           for r in result.replies),
               timeout=30, interval=0.05, what=f"the probe answered for {seconds} s")


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


def test_status_shows_owner_and_membership_view(lan: L2Lan) -> None:
    lan.start_all()
    # every agent past its start-up wait, with the full view (not only a quorum of it)
    status = lan.wait_converged()["n2"]
    assert status["membership"]["alive"] == ["n1", "n2", "n3"]
    assert status["membership"]["quorum"] is True
    assert status["membership"]["settled"] is True
    assert {v["ip"]: (v["owner"], v["answering_here"]) for v in status["vips"]} == {
        VIP4: ("n1", False),
        VIP6: ("n1", False),
    }
    assert status["interfaces"]["eth0"]["mac"] == lan.macs["n2"]


def test_sigkill_of_owner_fails_over_to_next_candidate(lan: L2Lan) -> None:
    lan.start_all()
    capture, pcap = lan.start_capture()
    probe = lan.start_probe(VIP4, period=0.01, duration=4.0)
    answered_for(probe, 1.0)
    killed_at = lan.kill("n1")
    probe.popen.wait(30)
    result = parse_probe(probe.log_text())
    before = [r.node for r in result.replies if r.recv < killed_at]
    assert before and set(before) == {"n1"}
    first = result.first_from("n2", after=killed_at)
    # within the probe's window (a generous deadline); how fast is bench/l2_failover.py's
    assert first is not None, "no request reached the new owner"
    assert {r.node for r in result.replies if r.sent > first.sent} == {"n2"}
    lan.wait_owner("n2")
    assert lan.resolve(VIP4) == lan.macs["n2"]
    assert lan.resolve(VIP6) == lan.macs["n2"]
    capture.stop()
    seen = answers(pcap)
    assert {a.mac for a in seen if a.time < killed_at} == {lan.macs["n1"]}
    # outside the failover window exactly one node answers: the new owner
    assert {a.mac for a in seen if a.time > killed_at + 0.05} == {lan.macs["n2"]}


def test_link_down_of_owner_fails_over_and_link_up_takes_back(lan: L2Lan) -> None:
    lan.start_all()  # returns once every agent is settled and agrees on n1 (no start-up race)
    lan.cable("n1", up=False)
    result = lan.probe(VIP4, period=0.01, duration=2.0)
    # answered again within the probe's window (a generous deadline), at the end by n2; never
    # by the cut-off n1
    assert result.replies and result.replies[-1].node == "n2"
    assert "n1" not in {r.node for r in result.replies}
    # n1 lost sight of the majority: it answers nothing while cut off
    lan.wait_owner("n2")
    assert lan.owned("n1") == []
    capture, pcap = lan.start_capture()
    restored_at = lan.cable("n1", up=True)
    lan.wait_owner("n1")
    settled = time.time()
    assert lan.resolve(VIP4) == lan.macs["n1"]
    assert set(lan.request(VIP4, count=5)) == {"n1"}
    capture.stop()
    seen = answers(pcap)
    assert {a.mac for a in seen if a.time > settled} == {lan.macs["n1"]}
    overlap = [a for a in seen if a.time > restored_at and a.mac == lan.macs["n2"]]
    assert all(a.time < settled for a in overlap)


def test_graceful_stop_hands_over_without_loss(lan: L2Lan) -> None:
    lan.start_all()
    probe = lan.start_probe(VIP4, period=0.01, duration=3.0)
    answered_for(probe, 1.0)
    stopped_at = lan.terminate("n1")
    assert lan.agents["n1"].returncode == 0
    probe.popen.wait(30)
    result = parse_probe(probe.log_text())
    assert result.lost() == []
    first = result.first_from("n2", after=stopped_at)
    assert first is not None
    assert result.replies[-1].node == "n2"
    lan.wait_owner("n2")


def test_partition_minority_drops_and_majority_answers(lan: L2Lan) -> None:
    """n1 (the owner) can still reach the client but no longer hears n2 and n3."""
    lan.start_all()
    n1 = lan.topo["n1"]
    n1.run(
        ["nft", "-f", "-"],
        input_text=(
            "table inet partition {\n"
            " chain in { type filter hook input priority 0; udp dport 7946 drop; }\n"
            " chain out { type filter hook output priority 0; udp dport 7946 drop; }\n"
            "}\n"
        ),
    )
    lan.wait_owner("n2")
    assert lan.owned("n1") == []
    capture, pcap = lan.start_capture()
    # what clients see during the partition: the VIP at the majority's owner, and only there
    assert lan.resolve(VIP4) == lan.macs["n2"]
    assert lan.resolve(VIP6) == lan.macs["n2"]
    assert set(lan.request(VIP4, count=5)) == {"n2"}
    capture.stop()
    assert {a.mac for a in answers(pcap)} == {lan.macs["n2"]}
    n1.run(["nft", "delete", "table", "inet", "partition"])
    lan.wait_owner("n1")
    assert lan.resolve(VIP4) == lan.macs["n1"]
