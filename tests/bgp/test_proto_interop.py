"""The sans-IO core against real daemons (BIRD 2, GoBGP) in a private network namespace.

A tiny blocking driver (this file run as a script inside the namespace) connects a Session
to the daemon, announces IPv4 and IPv6 routes with communities, and holds the session until
told to stop; the test reads what the daemon received through the daemon's own CLI.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.interop]

HERE = Path(__file__).resolve()
N_V4, N_V6 = 2000, 100
OUR_ADDR, DAEMON_ADDR = "127.0.0.2", "127.0.0.1"


# --------------------------------------------------------------------------- the driver


def drive(peer_asn: int, seconds: float) -> None:
    """Run one session to DAEMON_ADDR:179 until stdin closes or ``seconds`` pass."""
    from vipcast.proto.bgp import (
        CloseWanted,
        ConnectWanted,
        Established,
        NotificationReceived,
        RouteAttributes,
        Session,
        SessionConfig,
    )

    routes = {
        f"198.18.{i // 256}.{i % 256}/32": RouteAttributes(
            communities=(65001 << 16 | 7,), large_communities=((65001, 1, 2),), med=20
        )
        for i in range(N_V4)
    }
    routes |= {f"2001:db8:ff::{i:x}/128": RouteAttributes() for i in range(N_V6)}
    config = SessionConfig(
        65001,
        peer_asn,
        "192.0.2.1",
        hold_time=30,
        connect_retry_time=1.0,
        next_hop_v4="192.0.2.2",  # GoBGP refuses loopback next hops (treat-as-withdraw)
        next_hop_v6="2001:db8::2",
    )
    session = Session(config)
    session.set_routes(routes)
    conn: socket.socket | None = None
    established = 0
    notifications: list[str] = []
    session.start(time.monotonic())
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        while (event := session.next_event()) is not None:
            if isinstance(event, ConnectWanted):
                if conn is not None:
                    conn.close()
                conn = socket.socket()
                conn.bind((OUR_ADDR, 0))
                conn.settimeout(2)
                try:
                    conn.connect((DAEMON_ADDR, 179))
                    session.connection_made(time.monotonic(), OUR_ADDR)
                except OSError:
                    conn.close()
                    conn = None
                    session.connection_lost(time.monotonic())
            elif isinstance(event, CloseWanted) and conn is not None:
                conn.sendall(session.data_to_send())
                conn.close()
                conn = None
            elif isinstance(event, Established):
                established += 1
            elif isinstance(event, NotificationReceived):
                notifications.append(event.notification.describe())
        out = session.data_to_send()
        if out and conn is not None:
            conn.sendall(out)
        watch: list[int] = [sys.stdin.fileno()] + ([conn.fileno()] if conn is not None else [])
        deadline = session.next_deadline()
        wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
        ready, _, _ = select.select(watch, [], [], wait)
        if sys.stdin.fileno() in ready and not sys.stdin.readline():
            break
        if conn is not None and conn.fileno() in ready:
            data = conn.recv(65536)
            if data:
                session.receive_data(data, time.monotonic())
            else:
                conn.close()
                conn = None
                session.connection_lost(time.monotonic())
        session.handle_timer(time.monotonic())
    report: dict[str, object] = {
        "established": established,
        "notifications": notifications,
        "advertised": session.stats.prefixes_advertised,
    }
    session.stop(time.monotonic(), "test done")
    if conn is not None:
        conn.sendall(session.data_to_send())
        conn.close()
    report["stats"] = vars(session.stats)
    print(json.dumps(report), flush=True)


# --------------------------------------------------------------------------- fixtures


@dataclass
class Netns:
    name: str
    tmp: Path
    procs: list[subprocess.Popen[str]]
    logs: list[IO[str]] = field(default_factory=list)

    def run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *cmd],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )

    def spawn(
        self,
        *cmd: str,
        stdin: int | None = None,
        stdout: int | IO[str] | None = None,
        stderr: int | IO[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *cmd],
            text=True,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
        self.procs.append(proc)
        return proc


@pytest.fixture
def netns() -> Iterator[Netns]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    name = f"vc-{os.getpid()}-pi{time.monotonic_ns() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="vc-proto-interop-"))
    ns = Netns(name, tmp, [])
    try:
        ns.run("ip", "link", "set", "lo", "up").check_returncode()
        yield ns
    finally:
        for proc in ns.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for handle in ns.logs:
            handle.close()
        subprocess.run(["ip", "netns", "del", name], check=False)
        for log in tmp.glob("*.log"):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        shutil.rmtree(tmp, ignore_errors=True)


def start_bird(ns: Netns) -> Callable[[], str]:
    conf = ns.tmp / "bird.conf"
    conf.write_text(
        f"""
log "{ns.tmp}/bird.log" all;
router id 192.0.2.20;
protocol device {{ }}
protocol bgp vc {{
  local {DAEMON_ADDR} as 65020;
  neighbor {OUR_ADDR} as 65001;
  multihop; passive;
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}
"""
    )
    sock = str(ns.tmp / "bird.ctl")
    ns.spawn("bird", "-f", "-c", str(conf), "-s", sock, "-P", str(ns.tmp / "bird.pid"))
    return lambda: ns.run("birdc", "-s", sock, "show", "protocols", "all", "vc").stdout


def start_gobgp(ns: Netns) -> Callable[[], str]:
    conf = ns.tmp / "gobgpd.toml"
    conf.write_text(
        f"""
[global.config]
  as = 65010
  router-id = "192.0.2.10"
  local-address-list = ["{DAEMON_ADDR}"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{OUR_ADDR}"
    peer-as = 65001
  [neighbors.transport.config]
    passive-mode = true
    local-address = "{DAEMON_ADDR}"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"""
    )
    log = open(ns.tmp / "gobgpd.log", "w")  # noqa: SIM115 - closed by the fixture
    ns.logs.append(log)
    ns.spawn(
        "gobgpd",
        "-f",
        str(conf),
        "--api-hosts",
        "127.0.0.1:50051",
        "--pprof-disable",
        stdout=log,
        stderr=log,
    )
    cli = ("gobgp", "-u", "127.0.0.1", "-p", "50051")

    def view() -> str:
        v4 = ns.run(*cli, "global", "rib", "-a", "ipv4", "summary").stdout
        v6 = ns.run(*cli, "global", "rib", "-a", "ipv6", "summary").stdout
        one = ns.run(*cli, "global", "rib", "-a", "ipv4", "198.18.0.1/32", "-j").stdout
        return f"{v4}\n{v6}\n{one}"

    return view


def start_frr(ns: Netns) -> Callable[[], str]:
    conf = ns.tmp / "bgpd.conf"
    conf.write_text(
        f"""
frr defaults traditional
hostname vcfrr
router bgp 65030
 bgp router-id 192.0.2.30
 no bgp ebgp-requires-policy
 neighbor {OUR_ADDR} remote-as 65001
 neighbor {OUR_ADDR} passive
 neighbor {OUR_ADDR} disable-connected-check
 neighbor {OUR_ADDR} update-source {DAEMON_ADDR}
 address-family ipv6 unicast
  neighbor {OUR_ADDR} activate
 exit-address-family
"""
    )
    t = str(ns.tmp)
    ns.spawn(
        "/usr/lib/frr/bgpd",
        "-f",
        str(conf),
        "-i",
        f"{t}/bgpd.pid",
        "-z",
        f"{t}/zserv.api",
        "--vty_socket",
        t,
        "-Z",
        "-S",
        "-l",
        DAEMON_ADDR,
        "-P",
        "0",
        "--log",
        f"file:{t}/bgpd.log",
    )

    def view() -> str:
        out = []
        for afi in ("ipv4", "ipv6"):
            cmd = f"show bgp {afi} unicast summary json"
            out.append(ns.run("vtysh", "--vty_socket", t, "-d", "bgpd", "-c", cmd).stdout)
        return "\n".join(out)

    return view


def frr_counts(text: str) -> tuple[int, int]:
    found = [int(n) for n in re.findall(r'"pfxRcd":\s*(\d+)', text)]
    return [*found, 0, 0][0], [*found, 0, 0][1]


def bird_counts(text: str) -> tuple[int, int]:
    found = [int(n) for n in re.findall(r"Routes:\s+(\d+) imported", text)]
    return [*found, 0, 0][0], [*found, 0, 0][1]


def gobgp_counts(text: str) -> tuple[int, int]:
    found = [int(n) for n in re.findall(r"Destination:\s*(\d+)", text)]
    return [*found, 0, 0][0], [*found, 0, 0][1]


@pytest.mark.parametrize(
    ("daemon", "peer_asn", "start", "counts"),
    [
        ("bird", 65020, start_bird, bird_counts),
        ("gobgp", 65010, start_gobgp, gobgp_counts),
        ("frr", 65030, start_frr, frr_counts),
    ],
)
def test_daemon_receives_our_routes(
    netns: Netns,
    daemon: str,
    peer_asn: int,
    start: Callable[[Netns], Callable[[], str]],
    counts: Callable[[str], tuple[int, int]],
) -> None:
    binary = {"bird": "bird", "gobgp": "gobgpd", "frr": "/usr/lib/frr/bgpd"}[daemon]
    if shutil.which(binary) is None:
        pytest.skip(f"{daemon} not installed")
    view = start(netns)
    time.sleep(1.0)
    src = str(HERE.parents[2] / "src")
    driver = netns.spawn(
        sys.executable,
        str(HERE),
        "--drive",
        str(peer_asn),
        "60",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": src},
    )
    deadline = time.monotonic() + 45
    seen = ""
    while time.monotonic() < deadline:
        seen = view()
        if counts(seen) == (N_V4, N_V6):
            break
        time.sleep(0.5)
    out, _ = driver.communicate(input="", timeout=20)
    report = json.loads(out.strip().splitlines()[-1])
    assert counts(seen) == (N_V4, N_V6), seen
    assert report["established"] == 1 and report["notifications"] == [], report
    assert report["advertised"] == N_V4 + N_V6
    if daemon == "gobgp":  # attributes as the daemon decoded them
        line = next(x for x in seen.splitlines() if x.startswith("{"))
        (path,) = json.loads(line)["198.18.0.1/32"]
        attrs = {a["type"]: a for a in path["attrs"]}
        assert attrs[8]["communities"] == [65001 << 16 | 7]
        assert attrs[4]["metric"] == 20
        assert attrs[32]["value"] == [{"ASN": 65001, "LocalData1": 1, "LocalData2": 2}]
        assert [a["type"] for a in path["attrs"]] == [1, 2, 3, 4, 8, 32]  # RFC 4271 §5 order
        assert attrs[3]["nexthop"] == "192.0.2.2"


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--drive":
    drive(int(sys.argv[2]), float(sys.argv[3]))
