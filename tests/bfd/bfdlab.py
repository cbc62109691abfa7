"""The BFD interop lab: a router and a node on one bridge, FRR bfdd or BIRD 2 as the router.

Shared by ``tests/bfd`` and ``bench/bfd_failover.py``. Topology (every name under the run's
prefix)::

    r (router: FRR or BIRD)  eth0 192.0.2.1/24 ──┐
                                                  sw: br0  (ports pr, pn)
    n (node: vipcast)        eth0 192.0.2.10/24 ─┘

:func:`cut` takes the node's bridge port down: the router's own eth0 stays up, so only BFD
(or BGP hold timers) can notice the node is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from vipcast.dataplane.netns_switch import inside
from vipcast.lab.frr import BfdProfile, FrrConfig, FrrInstance, start_frr
from vipcast.lab.netns import (
    LabError,
    Netns,
    Process,
    ProcessDied,
    Topology,
    run_command,
    wait_until,
)
from vipcast.proto.bfd import SessionConfig, StateChanged
from vipcast.runtime.bfd.manager import BfdHandle, BfdManager

T = TypeVar("T")

ROUTER_IP = "192.0.2.1"
NODE_IP = "192.0.2.10"
ROUTER_IP6 = "2001:db8:b::1"
NODE_IP6 = "2001:db8:b::10"


@dataclass(frozen=True)
class Lan:
    router: Netns
    switch: Netns
    node: Netns


def build_lan(topo: Topology) -> Lan:
    r, sw, n = topo.add_netns("r", router=True), topo.add_netns("sw"), topo.add_netns("n")
    sw.add_bridge("br0")
    topo.attach_to_bridge(sw, "br0", "pr", r, "eth0")
    topo.attach_to_bridge(sw, "br0", "pn", n, "eth0")
    r.add_address("eth0", f"{ROUTER_IP}/24")
    n.add_address("eth0", f"{NODE_IP}/24")
    r.add_address("eth0", f"{ROUTER_IP6}/64")
    n.add_address("eth0", f"{NODE_IP6}/64")
    return Lan(r, sw, n)


def cut(lan: Lan) -> None:
    lan.switch.set_link("pn", False)


def restore(lan: Lan) -> None:
    lan.switch.set_link("pn", True)


# ---------------------------------------------------------------------------- FRR


def start_frr_bfd(
    lan: Lan, workdir: Path, *, interval_ms: int = 100, mult: int = 3, asn: int = 64512
) -> FrrInstance:
    profile = BfdProfile("fast", detect_multiplier=mult, receive_interval=interval_ms,
                         transmit_interval=interval_ms)  # fmt: skip
    cfg = FrrConfig(asn=asn, router_id=ROUTER_IP, bfd_profiles=(profile,), bfdd=True,
                    listen_port=0, hostname="r")  # fmt: skip
    return start_frr(lan.router, cfg, workdir / "frr")


def frr_add_peer(frr: FrrInstance, peer: str, local: str, *, multihop: bool = False) -> None:
    where = (
        f"peer {peer} multihop local-address {local}"
        if multihop
        else (f"peer {peer} local-address {local} interface eth0")
    )
    frr.configure("bfd", where, "profile fast", daemon="bfdd")


def frr_peer(frr: FrrInstance, peer: str) -> dict[str, object]:
    for p in frr.bfd_peers():
        if p.get("peer") == peer:
            return p
    return {}


def frr_status(frr: FrrInstance, peer: str) -> str:
    return str(frr_peer(frr, peer).get("status", ""))


# ---------------------------------------------------------------------------- BIRD


@dataclass
class Bird:
    """BIRD 2 in the router namespace, with its control socket in the run's directory."""

    netns: Netns
    directory: Path
    process: Process

    def birdc(self, command: str) -> str:
        argv = ["birdc", "-s", str(self.directory / "bird.ctl"), *command.split()]
        return run_command(argv, timeout=10).stdout

    def sessions(self) -> dict[str, str]:
        """``show bfd sessions``: neighbor address -> state ("Up", "Down", "Init", ...)."""
        out: dict[str, str] = {}
        for line in self.birdc("show bfd sessions").splitlines():
            m = re.match(r"^\s*([0-9a-fA-F.:]+)\s+(\S+)\s+(Up|Down|Init|AdminDown)\b", line)
            if m:
                out[m.group(1)] = m.group(3)
        return out

    def state(self, peer: str) -> str:
        return self.sessions().get(peer, "")

    def stop(self) -> None:
        self.process.stop()


BIRD_BFD_CONF = """\
router id {router_id};
log stderr all;
protocol device {{ }}
protocol bfd vcbfd {{
  interface "*" {{
    min rx interval {interval} ms;
    min tx interval {interval} ms;
    multiplier {mult};
  }};
  multihop {{
    min rx interval {interval} ms;
    min tx interval {interval} ms;
    multiplier {mult};
  }};
{neighbors}
}}
{extra}
"""


def start_bird(
    lan: Lan,
    workdir: Path,
    neighbors: list[tuple[str, str, bool]],
    *,
    interval_ms: int = 100,
    mult: int = 3,
    extra: str = "",
) -> Bird:
    """Start ``bird -f`` in the router namespace with static BFD ``neighbors``
    ``(peer, local, multihop)``; returns once birdc answers."""
    directory = workdir / "bird"
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for peer, local, multihop in neighbors:
        if multihop:
            lines.append(f"  neighbor {peer} local {local} multihop on;")
        else:
            lines.append(f'  neighbor {peer} dev "eth0" local {local};')
    conf = directory / "bird.conf"
    conf.write_text(
        BIRD_BFD_CONF.format(
            router_id=ROUTER_IP,
            interval=interval_ms,
            mult=mult,
            neighbors="\n".join(lines),
            extra=extra,
        )
    )
    ctl = directory / "bird.ctl"
    proc = lan.router.spawn(
        ["bird", "-f", "-c", str(conf), "-s", str(ctl), "-P", str(directory / "bird.pid")],
        name="bird",
        log_path=directory / "bird.log",
    )
    bird = Bird(lan.router, directory, proc)

    def ready() -> bool:
        if not proc.alive():
            raise ProcessDied(f"bird exited:\n{proc.log_text()[-2000:]}")
        if not ctl.exists():
            return False
        with contextlib.suppress(LabError):
            return "BIRD" in bird.birdc("show status")
        return False

    wait_until(ready, timeout=20, what="bird control socket", on_timeout=proc.log_text)
    return bird


# ---------------------------------------------------------------------------- vipcast


class BfdThread:
    """A vipcast :class:`BfdManager` on its own event loop in a thread, inside ``netns``.

    The test body stays synchronous (lab calls block on subprocesses) while BFD timers keep
    running; ``setns`` only moves the loop's thread, so its sockets live in the namespace.
    """

    def __init__(self, netns: str | None, registry: CollectorRegistry | None = None) -> None:
        self.netns = netns
        self.loop = asyncio.new_event_loop()
        self.changes: list[tuple[float, str, StateChanged]] = []
        self.downs: list[tuple[float, str, StateChanged]] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.manager: BfdManager = self.call(
            lambda: BfdManager(registry=registry, socket_factory=self._socket)
        )

    def _socket(self, family: int) -> socket.socket:
        with inside(self.netns):
            return socket.socket(family, socket.SOCK_DGRAM)

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def add_peer(self, peer: str, local: str | None, config: SessionConfig, **kw: Any) -> BfdHandle:
        def add() -> BfdHandle:
            h = self.manager.add_peer(peer, local, config, **kw)
            h.on_change(lambda c: self.changes.append((time.monotonic(), peer, c)))
            h.on_down(lambda c: self.downs.append((time.monotonic(), peer, c)))
            return h

        return self.call(add)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.manager.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class MutableSocket(socket.socket):
    """A UDP socket whose sends can be silenced, to play a dead peer without telling it."""

    muted = False

    def sendto(self, data: object, *args: object) -> int:
        if self.muted:
            return 0
        return super().sendto(data, *args)  # type: ignore[call-overload,no-any-return]
