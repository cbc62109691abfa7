"""Capture real OPEN/UPDATE bytes from GoBGP, BIRD and FRR into ``captured_<daemon>.json``.

Run as root: ``.venv/bin/python tests/bgp/vectors/capture.py gobgp|bird|frr``. It creates a
namespace ``vc-<pid>-cap`` (loopback only), runs the daemon there with its state in a temp dir,
accepts the daemon's connection on 127.0.0.2:179 with a passive vipcast Session, records every
message the daemon sent for a few seconds, then kills the daemon and deletes the namespace.
The JSON files are committed; the tests only read them.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCAL = "127.0.0.2"
DAEMON_ADDR = "127.0.0.1"
OUR_ASN = 65001

GOBGP_CONF = """
[global.config]
  as = 65010
  router-id = "192.0.2.10"
  port = -1
[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.2"
    peer-as = 65001
  [neighbors.transport.config]
    local-address = "127.0.0.1"
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"""

BIRD_CONF = """
log "{tmp}/bird.log" all;
router id 192.0.2.20;
protocol device {{ }}
protocol static s4 {{ ipv4; route 203.0.113.0/24 blackhole; route 203.0.113.128/25 blackhole; }}
protocol static s6 {{ ipv6; route 2001:db8:2::/48 blackhole; }}
protocol bgp vc {{
  local 127.0.0.1 port 1790 as 65020;
  neighbor port 179;
  neighbor 127.0.0.2 as 65001;
  connect retry time 1;
  multihop;
  ipv4 {{ import all; export filter {{
      bgp_community.add((65020,7)); bgp_large_community.add((65020,1,2));
      bgp_med = 5; accept; }}; }};
  ipv6 {{ import all; export all; next hop address 2001:db8::20; }};
}}
"""


FRR_CONF = """
frr defaults traditional
hostname vccap
router bgp 65030
 bgp router-id 192.0.2.30
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 127.0.0.2 remote-as 65001
 neighbor 127.0.0.2 disable-connected-check
 neighbor 127.0.0.2 update-source 127.0.0.1
 neighbor 127.0.0.2 timers connect 1
 address-family ipv4 unicast
  network 203.0.113.0/24 route-map SETC
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:3::/48
  neighbor 127.0.0.2 activate
 exit-address-family
route-map SETC permit 10
 set community 65030:9
 set large-community 65030:1:2
 set metric 7
"""


def _start_frr(tmp: str) -> list[subprocess.Popen[bytes]]:
    conf = Path(tmp, "bgpd.conf")
    conf.write_text(FRR_CONF)
    proc = subprocess.Popen(
        [
            "/usr/lib/frr/bgpd",
            "-f",
            str(conf),
            "-i",
            f"{tmp}/bgpd.pid",
            "-z",
            f"{tmp}/zs.api",
            "--vty_socket",
            tmp,
            "-Z",
            "-S",
            "-l",
            DAEMON_ADDR,
            "-p",
            "1790",
            "-P",
            "0",
            "--log",
            f"file:{tmp}/bgpd.log",
        ],
    )
    return [proc]


def _start_gobgp(tmp: str) -> list[subprocess.Popen[bytes]]:
    conf = Path(tmp, "gobgpd.toml")
    conf.write_text(GOBGP_CONF)
    log = open(Path(tmp, "gobgpd.log"), "wb")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        ["gobgpd", "-f", str(conf), "--api-hosts", "127.0.0.1:50051"], stdout=log, stderr=log
    )
    time.sleep(1.5)
    cli = ["gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib"]
    subprocess.run(
        [
            *cli,
            "add",
            "-a",
            "ipv4",
            "198.51.100.0/24",
            "community",
            "65010:100",
            "med",
            "10",
            "large-community",
            "65010:1:2",
        ],
        check=True,
    )
    subprocess.run(
        [*cli, "add", "-a", "ipv6", "2001:db8:1::/48", "nexthop", "2001:db8::10"], check=True
    )
    return [proc]


def _start_bird(tmp: str) -> list[subprocess.Popen[bytes]]:
    conf = Path(tmp, "bird.conf")
    conf.write_text(BIRD_CONF.format(tmp=tmp))
    proc = subprocess.Popen(
        [
            "bird",
            "-f",
            "-c",
            str(conf),
            "-s",
            str(Path(tmp, "bird.ctl")),
            "-P",
            str(Path(tmp, "bird.pid")),
        ],
    )
    return [proc]


STARTERS = {"gobgp": _start_gobgp, "bird": _start_bird, "frr": _start_frr}


def inner(daemon: str) -> None:
    sys.path.insert(0, str(HERE.parents[2] / "src"))
    from vipcast.proto.bgp import Session, SessionConfig, State
    from vipcast.proto.bgp.wire import Framer

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    peer_asn = {"gobgp": 65010, "bird": 65020, "frr": 65030}[daemon]
    with tempfile.TemporaryDirectory(prefix="vc-cap-") as tmp:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOCAL, 179))
        listener.listen(1)
        procs = STARTERS[daemon](tmp)
        try:
            listener.settimeout(20)
            conn, _ = listener.accept()
            session = Session(
                SessionConfig(OUR_ASN, peer_asn, "192.0.2.1", passive=True, hold_time=30)
            )
            session.start(time.monotonic())
            session.connection_made(time.monotonic(), LOCAL)
            raw = bytearray()
            until = time.monotonic() + 20
            established_at: float | None = None
            while time.monotonic() < until:
                out = session.data_to_send()
                if out:
                    conn.sendall(out)
                ready, _, _ = select.select([conn], [], [], 0.2)
                if ready:
                    data = conn.recv(65536)
                    if not data:
                        break
                    raw += data
                    session.receive_data(data, time.monotonic())
                session.handle_timer(time.monotonic())
                if session.state is State.ESTABLISHED and established_at is None:
                    established_at = time.monotonic()
                if established_at is not None and time.monotonic() - established_at > 4:
                    break
            session.stop(time.monotonic(), "capture done")
            conn.sendall(session.data_to_send())
            conn.close()
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
            for log in Path(tmp).glob("*.log"):
                print(f"--- {log.name}\n{log.read_text()[-2000:]}", file=sys.stderr)
        framer = Framer(65535)
        framer.feed(bytes(raw))
        messages = []
        while (item := framer.next_message()) is not None:
            msg_type, body = item
            header = b"\xff" * 16 + (19 + len(body)).to_bytes(2, "big") + bytes((msg_type,))
            messages.append({"type": msg_type, "hex": (header + body).hex()})
        version = subprocess.run(
            [{"gobgp": "gobgpd", "bird": "bird", "frr": "/usr/lib/frr/bgpd"}[daemon], "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
        record = {
            "source": daemon,
            "version": (version.stdout + version.stderr).strip().splitlines()[0],
            "peer_asn": peer_asn,
            "established": established_at is not None,
            "messages": messages,
        }
        Path(HERE, f"captured_{daemon}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{daemon}: {len(messages)} messages, established={established_at is not None}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--inner":
        inner(sys.argv[2])
        return
    daemon = sys.argv[1]
    ns = f"vc-{os.getpid()}-cap"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, __file__, "--inner", daemon],
            check=True,
            timeout=60,
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
