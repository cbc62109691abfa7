"""Certificate rotation and PROXY protocol v2, with a real Envoy in network namespaces.

- Rotation: a TLS keep-alive connection opened with the old certificate keeps working after
  the Secret changes (SDS: no listener change, no drain), and a new connection is served the
  new certificate.
- PROXY protocol v2 (``--proxy-protocol``, an upstream LB tier in front): a request behind a
  real v2 header (crafted here, byte by byte from the spec) reaches the backend with the
  header's source address in X-Forwarded-For; a connection without the header is refused.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import ssl
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from certs import self_signed
from gwobjects import tls_secret

from lab_fixtures import require_envoy
from vipcast.lab.gateway import GATEWAY_IP, GatewayLab, base_objects, http_route, pod_ip
from vipcast.lab.gateway import service_objects as svc
from vipcast.lab.netns import Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]
HOST = "rot.example.com"

#: in the client namespace: one TLS connection, a request, then (after a line on stdin) a
#: second request on the same connection, then a new connection; prints a JSON line each step
KEEPALIVE_CLIENT = r"""
import hashlib, json, socket, ssl, sys
ip, host = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def connect():
    s = ctx.wrap_socket(socket.create_connection((ip, 443), timeout=10), server_hostname=host)
    return s, hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
def get(s):
    s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    f = s.makefile("rb")
    status = int(f.readline().split()[1]); length = 0
    while (line := f.readline().strip()):
        k, _, v = line.decode().partition(":")
        if k.lower() == "content-length": length = int(v)
    f.read(length)
    return status
s, fp = connect()
print(json.dumps({"step": "first", "fp": fp, "status": get(s)}), flush=True)
sys.stdin.readline()
print(json.dumps({"step": "same", "status": get(s)}), flush=True)
s2, fp2 = connect()
print(json.dumps({"step": "new", "fp": fp2, "status": get(s2)}), flush=True)
"""


def _fingerprint(pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


@pytest.fixture(scope="module")
def lab(netlab_module: Topology) -> Iterator[GatewayLab]:
    require_envoy()
    lab = GatewayLab(netlab_module)
    lab.start_pod("p0", 0)
    lab.apply_nowait(base_objects())
    yield lab


def _objects(cert: str, key: str) -> list[dict[str, Any]]:
    listeners = [{"name": "https", "port": 443, "protocol": "HTTPS", "hostname": HOST,
                  "tls": {"certificateRefs": [{"name": "rot"}]}}]
    return [*base_objects(listeners), *svc("p0", {pod_ip(0): "ready"}),
            tls_secret("rot", "default", cert, key),
            http_route("r", hostnames=[HOST], rules=[{"backendRefs": [{"name": "p0",
                                                                       "port": 80}]}])]


def test_certificate_rotation_keeps_established_connections(lab: GatewayLab) -> None:
    old_cert, old_key = self_signed(HOST)
    new_cert, new_key = self_signed(HOST)
    lab.apply_nowait(_objects(old_cert, old_key))
    lab.start_gateway()
    lab.apply(_objects(old_cert, old_key))
    before = lab.status()
    client = subprocess.Popen(
        lab.client.exec_argv([sys.executable, "-c", KEEPALIVE_CLIENT, GATEWAY_IP, HOST]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None and client.stdin is not None
        first = json.loads(client.stdout.readline())
        assert first == {"step": "first", "fp": _fingerprint(old_cert), "status": 200}
        after = lab.apply(_objects(new_cert, new_key))  # the Secret changes
        # only the secret moved: no listener change, so nothing is drained
        assert after["versions"]["Listener"] == before["versions"]["Listener"]
        assert after["versions"]["Secret"] != before["versions"]["Secret"]
        client.stdin.write("go\n")
        client.stdin.flush()
        same = json.loads(client.stdout.readline())
        fresh = json.loads(client.stdout.readline())
    finally:
        client.kill()
        client.communicate()
    assert same == {"step": "same", "status": 200}  # the old connection still serves
    assert fresh == {"step": "new", "fp": _fingerprint(new_cert), "status": 200}
    assert lab.status()["envoy"]["restarts"] == before["envoy"]["restarts"]


def _proxy_v2_header(src: str, src_port: int, dst: str, dst_port: int) -> bytes:
    """A PROXY protocol v2 header: signature, version 2 / PROXY, TCP over IPv4, addresses."""
    body = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
            + struct.pack("!HH", src_port, dst_port))
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


RAW_CLIENT = r"""
import socket, sys
payload = bytes.fromhex(sys.argv[2])
s = socket.create_connection((sys.argv[1], 80), timeout=10)
s.sendall(payload)
out = b""
try:
    while (chunk := s.recv(65536)):
        out += chunk
except OSError:
    pass
sys.stdout.write(out.decode(errors="replace"))
"""


def _raw(lab: GatewayLab, payload: bytes) -> str:
    out = lab.client.run([sys.executable, "-c", RAW_CLIENT, GATEWAY_IP, payload.hex()],
                         check=False, timeout=30)
    return out.stdout


def test_proxy_protocol_v2_from_an_upstream_tier(lab: GatewayLab) -> None:
    if lab.gateway_proc is not None:
        lab.gateway_proc.stop()
    objects = [*base_objects(), *svc("p0", {pod_ip(0): "ready"}),
               http_route("pp", rules=[{"backendRefs": [{"name": "p0", "port": 80}]}])]
    lab.apply_nowait(objects)
    lab.start_gateway("--proxy-protocol")
    lab.apply(objects)
    request = b"GET / HTTP/1.1\r\nHost: pp\r\nConnection: close\r\n\r\n"
    answer = _raw(lab, _proxy_v2_header("198.51.100.77", 43210, GATEWAY_IP, 80) + request)
    head, _, body = answer.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200"), answer
    seen = json.loads(body)
    # the client the LB tier saw, not the LB's own address
    assert seen["headers"]["x-forwarded-for"] == "198.51.100.77"
    # without the header (the listener expects one): no HTTP answer
    assert not _raw(lab, request).startswith("HTTP/1.1 200")
    _connections_spread_over_the_workers(lab)


#: in the client namespace: N keep-alive connections, each a PROXY v2 header and a request
#: (its answer read), all held open until a line on stdin
HOLD_CLIENT = r"""
import socket, sys
ip, n, header = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
held = []
for i in range(n):
    s = socket.create_connection((ip, 80), timeout=10)
    s.sendall(header + b"GET / HTTP/1.1\r\nHost: pp\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got
    held.append(s)
print("held", flush=True)
sys.stdin.readline()
"""


def _connections_spread_over_the_workers(lab: GatewayLab) -> None:
    """exact_balance: 8 long-lived connections from the LB tier end up 4 and 4 on the two
    workers (the kernel's hash alone gives an even split only 27 % of the time)."""
    pid = lab.status()["envoy"]["pid"]
    argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    workers = int(argv[argv.index("--concurrency") + 1])
    if workers < 2:
        pytest.skip("one CPU: Envoy has one worker, nothing to balance")
    header = _proxy_v2_header("198.51.100.77", 43210, GATEWAY_IP, 80)
    client = subprocess.Popen(lab.client.exec_argv(
        [sys.executable, "-c", HOLD_CLIENT, GATEWAY_IP, "8", header.hex()]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None and client.stdin is not None
        assert client.stdout.readline().strip() == "held"
        stats = lab.gw.run(["curl", "-s", "127.0.0.1:19000/stats?filter=worker_.*"
                            "downstream_cx_active"]).stdout
        active = sorted(int(line.rsplit(":", 1)[1]) for line in stats.splitlines()
                        if f"{GATEWAY_IP}_80.worker_" in line)
        assert sum(active) == 8, stats
        assert active[-1] - active[0] <= 1, stats
        client.stdin.write("done\n")
        client.stdin.flush()
    finally:
        client.kill()
        client.communicate()
