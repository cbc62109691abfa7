"""Traffic through the real data plane: client -> router -> node (VIP, nftables) -> backends.

Every request loop is bounded in count and time; all traffic stays inside this run's namespaces.
"""

from __future__ import annotations

import asyncio
import collections
import json
import shutil
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from dp_lab import (
    BACKEND_PORT,
    CLIENT4,
    CLIENT4_OTHER,
    CLIENT6,
    VIP4,
    VIP6,
    TrafficLab,
)

from vipcast.core.desired import Backend, NatRule, NodePlan, TrafficPolicy
from vipcast.dataplane.nft import NftTable
from vipcast.dataplane.node import NodeDataplane
from vipcast.dataplane.routes import LocalVips
from vipcast.lab.backends import start_backend
from vipcast.runtime.health import HealthCheckConfig, HealthChecker
from vipcast.runtime.probe import AnnouncementGate

pytestmark = [pytest.mark.netns, pytest.mark.slow]
T = TypeVar("T")
REQUESTS = 60


def _rule(
    lab: TrafficLab,
    *,
    policy: TrafficPolicy = "Cluster",
    v6: bool = False,
    source_ranges: tuple[str, ...] = (),
    service: str = "default/web",
) -> NatRule:
    local = policy == "Local"
    backends = tuple(
        Backend(b.ip6 if v6 else b.ip4, BACKEND_PORT, "n1" if local else f"n{i + 2}", local=local)
        for i, b in enumerate(lab.backends)
    )
    return NatRule(service, VIP6 if v6 else VIP4, 80, "TCP", backends, policy, source_ranges)


def _plan(*rules: NatRule) -> NodePlan:
    return NodePlan(node="n1", nat=rules, local_vips=(VIP4, VIP6))


def _run(lab: TrafficLab, body: Callable[[NodeDataplane, HealthChecker], Awaitable[T]]) -> T:
    async def main() -> T:
        checker = HealthChecker(
            HealthCheckConfig(interval=0.2, timeout=0.5, rise=2, fall=2),
            socket_factory=lab.node_factory(),
        )
        dp = NodeDataplane(NftTable(lab.node.name), LocalVips(lab.node.name), checker)
        runner = asyncio.create_task(dp.run())
        try:
            return await body(dp, checker)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await checker.close()

    return asyncio.run(asyncio.wait_for(main(), 120))


async def _requests(
    lab: TrafficLab, vip: str, n: int = REQUESTS, source: str | None = None
) -> tuple[collections.Counter[str], list[str], list[str]]:
    """Send ``n`` sequential GETs; (count per backend, client addresses seen, failures)."""
    per_backend: collections.Counter[str] = collections.Counter()
    seen: list[str] = []
    failures: list[str] = []
    for _ in range(n):
        r = await lab.get(vip, source=source, timeout=2.0)
        if not r.ok:
            failures.append(r.error)
            continue
        name, client = r.body.decode().split()
        per_backend[name] += 1
        seen.append(client)
    return per_backend, seen, failures


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


def test_cluster_spreads_and_masquerades_remote_backends(traffic_lab: TrafficLab) -> None:
    lab = traffic_lab

    async def body(dp: NodeDataplane, _h: HealthChecker) -> None:
        report = await dp.apply_report(_plan(_rule(lab)))
        assert report.ok, report.nft.error
        per_backend, seen, failures = await _requests(lab, VIP4)
        assert not failures
        assert set(per_backend) == {"b1", "b2", "b3"}
        assert min(per_backend.values()) >= 5, per_backend
        # remote backends are masqueraded: they see the node, never the client
        assert CLIENT4 not in seen
        assert set(seen) <= {"192.0.2.5", "192.0.2.9", "192.0.2.13"}

    _run(lab, body)


def test_local_policy_preserves_client_address_v4_and_v6(traffic_lab: TrafficLab) -> None:
    lab = traffic_lab

    async def body(dp: NodeDataplane, _h: HealthChecker) -> None:
        plan = _plan(_rule(lab, policy="Local"), _rule(lab, policy="Local", v6=True))
        assert (await dp.apply_report(plan)).ok
        per4, seen4, fail4 = await _requests(lab, VIP4, n=30)
        per6, seen6, fail6 = await _requests(lab, VIP6, n=30)
        assert not fail4 and not fail6
        assert set(seen4) == {CLIENT4}
        assert set(seen6) == {CLIENT6}
        assert len(per4) >= 2 and len(per6) >= 2

    _run(lab, body)


def test_source_ranges_block_others(traffic_lab: TrafficLab) -> None:
    lab = traffic_lab

    async def body(dp: NodeDataplane, _h: HealthChecker) -> None:
        rule = _rule(lab, policy="Local", source_ranges=(f"{CLIENT4}/32",))
        assert (await dp.apply_report(_plan(rule))).ok
        _per, seen, failures = await _requests(lab, VIP4, n=10, source=CLIENT4)
        assert not failures and set(seen) == {CLIENT4}
        blocked = await lab.get(VIP4, source=CLIENT4_OTHER, timeout=1.0)
        assert not blocked.ok and blocked.error == "timeout"  # dropped, not refused

    _run(lab, body)


def test_verified_announcement_probe_goes_through_output_chain(traffic_lab: TrafficLab) -> None:
    lab = traffic_lab

    async def body(dp: NodeDataplane, _h: HealthChecker) -> None:
        gate = AnnouncementGate(timeout=1.0, attempts=2, retry_delay=0.1,
                                socket_factory=lab.node_factory())
        await dp.cleanup()
        # no rules yet: the VIP is not served, so it must not be reported ready
        assert not (await gate.verify(VIP4, 80)).ok
        assert (await dp.apply_report(_plan(_rule(lab), _rule(lab, v6=True)))).ok
        assert (await gate.verify(VIP4, 80)).ok
        assert (await gate.verify(VIP6, 80)).ok
        assert not (await gate.verify(VIP4, 81)).ok

    _run(lab, body)


DNS_PORT = 5353  # dnsmasq's port on the backends; the VIP serves DNS on 53


def _dns_rule(lab: TrafficLab, backend: int) -> NatRule:
    b = lab.backends[backend]
    return NatRule("default/dns", VIP4, 53, "UDP", (Backend(b.ip4, DNS_PORT, "n2", local=False),))


@pytest.mark.skipif(shutil.which("dnsmasq") is None,
                    reason="dnsmasq not installed (scripts/setup.sh installs dnsmasq-base)")
def test_udp_vip_is_verified_by_a_real_dns_backend_answering(traffic_lab: TrafficLab) -> None:
    """A DNS Service (UDP) is verified only when a query through the VIP gets an answer from a
    real DNS server behind it; a stopped server is refused; a silent backend leaves it
    unverified (never counted as verified)."""
    lab = traffic_lab
    dns_ns = lab.backends[0].ns
    silent_ns = lab.backends[1].ns

    async def body(dp: NodeDataplane, _h: HealthChecker) -> None:
        gate = AnnouncementGate(timeout=1.0, attempts=2, retry_delay=0.1,
                                socket_factory=lab.node_factory())
        key = (VIP4, 53, "UDP")
        dnsmasq = await asyncio.to_thread(
            dns_ns.spawn,
            ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--pid-file=",
             "--user=root", f"--port={DNS_PORT}", f"--listen-address={lab.backends[0].ip4}",
             "--bind-interfaces", "--address=/vip.test/192.0.2.99", "--log-queries",
             "--log-facility=-"],
            name="dnsmasq")
        await _until(lambda: f":{DNS_PORT} " in dns_ns.run(["ss", "-Hunl"]).stdout, 15,
                     "dnsmasq listening")
        assert (await dp.apply_report(_plan(_dns_rule(lab, 0)))).ok
        answer = await gate.verify(VIP4, 53, "UDP")
        assert answer.ok, answer.error
        assert answer.body[2] & 0x80  # QR: a DNS response
        assert gate.state(key) == "verified"
        assert "query[NS]" in dnsmasq.log_text()

        await asyncio.to_thread(dnsmasq.stop, 3.0)
        refused = await gate.verify(VIP4, 53, "UDP")
        assert not refused.ok and refused.error == "refused"
        assert gate.state(key) is None and not gate.may_announce(key)

        # a UDP backend that reads and never answers (not a DNS server): no evidence either way
        silent = await asyncio.to_thread(
            silent_ns.spawn,
            [sys.executable, "-c",
             "import socket,time\n"
             "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
             f"s.bind(('{lab.backends[1].ip4}',{DNS_PORT}))\n"
             "print('bound',flush=True)\n"
             "while True: s.recv(512)\n"],
            name="silent-udp")
        await _until(lambda: "bound" in silent.log_text(), 15, "silent backend bound")
        assert (await dp.apply_report(_plan(_dns_rule(lab, 1)))).ok
        quiet = await gate.verify(VIP4, 53, "UDP")
        assert not quiet.ok and quiet.error == "no answer: unverified"
        assert gate.state(key) == "unverified"
        assert not gate.is_verified(key) and gate.may_announce(key)
        await asyncio.to_thread(silent.stop, 3.0)

    _run(lab, body)


def test_killed_backend_is_taken_out_within_the_health_window(traffic_lab: TrafficLab) -> None:
    lab = traffic_lab
    victim = lab.backends[1]

    async def body(dp: NodeDataplane, health: HealthChecker) -> None:
        assert (await dp.apply_report(_plan(_rule(lab)))).ok
        per_backend, _seen, failures = await _requests(lab, VIP4, n=30)
        assert not failures and victim.name in per_backend
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        await asyncio.to_thread(lab.stop_backend, victim)
        key = (victim.ip4, BACKEND_PORT)

        def kernel_down() -> frozenset[tuple[str, int]]:
            # the backends down in what the kernel was last made to match (set once the flip
            # patch or the whole apply returned); dp.last alone does not tell: the first
            # apply's report also says 'changed'
            applied = dp._applied
            return applied[1] if applied is not None else frozenset()  # type: ignore[return-value]

        await _until(lambda: key in health.down(), 30, "backend marked down")
        # the re-render runs on the flip; wait for it to reach the kernel
        await _until(lambda: key in kernel_down(), 30, "table re-rendered without it")
        window = loop.time() - killed_at
        per_backend, _seen, failures = await _requests(lab, VIP4, n=REQUESTS)
        assert not failures, failures
        assert victim.name not in per_backend
        assert dp.has_healthy_backend("default/web")
        print(f"backend taken out {window:.2f}s after the kill")
        await asyncio.to_thread(lab.start_backend, victim)
        await _until(lambda: key not in health.down(), 30, "backend back up")
        await _until(lambda: key not in kernel_down(), 30, "table re-rendered with it")
        per_backend, _seen, failures = await _requests(lab, VIP4, n=REQUESTS)
        assert not failures and victim.name in per_backend

    try:
        _run(lab, body)
    finally:
        if victim.proc is None:
            lab.start_backend(victim)


def test_no_healthy_backend_means_not_announceable(traffic_lab: TrafficLab) -> None:
    lab = traffic_lab

    async def body(dp: NodeDataplane, health: HealthChecker) -> None:
        rule = NatRule("default/lonely", VIP4, 80, "TCP",
                       (Backend(lab.backends[0].ip4, 9, "n2"),))  # nothing listens on :9
        assert (await dp.apply_report(_plan(rule))).ok
        assert dp.has_healthy_backend("default/lonely")  # benefit of the doubt at start
        await _until(lambda: not dp.has_healthy_backend("default/lonely"), 10, "service down")
        assert dp.healthy_services() == frozenset()

    _run(lab, body)


def _udp_exchange(lab: TrafficLab, vip: str, port: int, n: int) -> list[dict[str, object]]:
    """``n`` datagrams, each from a fresh socket (a new flow); the JSON answers received."""
    answers: list[dict[str, object]] = []
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    for _ in range(n):
        sock = lab.client_factory()(family, socket.SOCK_DGRAM)
        try:
            sock.settimeout(2.0)
            sock.sendto(b"ping", (vip, port))
            data, _addr = sock.recvfrom(4096)
            answers.append(json.loads(data))
        except TimeoutError:
            continue
        finally:
            sock.close()
    return answers


def test_udp_is_spread_and_local_keeps_the_client(traffic_lab: TrafficLab) -> None:
    lab = traffic_lab
    servers = [
        start_backend(b.ns, b.name, node="n1", port=8081, udp_port=5353) for b in lab.backends
    ]
    try:

        async def body(dp: NodeDataplane, _h: HealthChecker) -> None:
            backends = tuple(Backend(b.ip4, 5353, "n1", local=True) for b in lab.backends)
            rule = NatRule("kube-system/dns", VIP4, 53, "UDP", backends, "Local")
            report = await dp.apply_report(_plan(rule))
            assert report.ok, report.nft.error
            await asyncio.sleep(1.0)  # several health intervals: UDP backends must stay in
            assert dp.has_healthy_backend("kube-system/dns")
            answers = await asyncio.to_thread(_udp_exchange, lab, VIP4, 53, 30)
            assert len(answers) == 30
            assert {a["client"] for a in answers} == {CLIENT4}
            assert len({a["backend"] for a in answers}) >= 2

        _run(lab, body)
    finally:
        for server in servers:
            server.stop()
