"""Network namespaces for tests, the lab and benchmarks: a typed wrapper over ``ip``.

Everything a run creates carries the run's prefix (``vc-<pid>`` by default), so parallel runs
never collide and cleanup finds exactly its own. Interfaces are always created *inside*
namespaces (a veth pair is made in one namespace with its peer placed directly in the other);
nothing is ever added to the root namespace. Processes started in a namespace are tracked by
PID (each in its own process group) and stopped SIGTERM-then-SIGKILL before the namespaces are
deleted.

Typical use::

    with Topology() as topo:
        r, n = topo.add_netns("router"), topo.add_netns("node1")
        topo.veth(r, "eth0", n, "eth0")
        r.add_address("eth0", "10.0.0.1/30"); n.add_address("eth0", "10.0.0.2/30")
        proc = n.spawn(["sleep", "60"], name="sleeper")
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from vipcast.lab.process import (
    LabError,
    Process,
    ProcessDied,
    kill_pids,
    run_command,
    wait_until,
)
from vipcast.lab.routes import NextHop, Route, parse_routes

__all__ = [
    "IFNAMSIZ",
    "LabError",
    "Netns",
    "NextHop",
    "Process",
    "ProcessDied",
    "Route",
    "Topology",
    "default_prefix",
    "delete_prefixed",
    "leftovers",
    "list_netns",
    "parse_routes",
    "run_command",
    "wait_until",
]

#: Linux interface names are at most 15 bytes
IFNAMSIZ = 15


def default_prefix() -> str:
    """The per-run prefix of every namespace this process creates: ``vc-<pid>``."""
    return f"vc-{os.getpid()}"


def list_netns() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    out = run_command(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def leftovers(prefix: str) -> list[str]:
    """Named namespaces of the run ``prefix`` (``<prefix>-*``); empty when it cleaned up."""
    stem = prefix if prefix.endswith("-") else f"{prefix}-"
    return sorted(name for name in list_netns() if name.startswith(stem))


# --------------------------------------------------------------------------- namespaces


@dataclass
class Netns:
    """One named network namespace of a :class:`Topology`."""

    name: str  # full name, with the run prefix
    short: str
    topology: Topology = field(repr=False)

    # ---- commands

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and capture its output."""
        return run_command(
            self.exec_argv(argv), check=check, timeout=timeout, input_text=input_text, env=env
        )

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip -n NS ARGS``."""
        return run_command(["ip", "-n", self.name, *args], check=check)

    def ip_json(self, *args: str) -> list[dict[str, Any]]:
        """``ip -n NS -j ARGS`` parsed (``[]`` when ip prints nothing)."""
        out = run_command(["ip", "-n", self.name, "-j", *args]).stdout.strip()
        data = json.loads(out) if out else []
        return data if isinstance(data, list) else [data]

    def spawn(
        self,
        argv: Sequence[str],
        *,
        name: str,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Process:
        """Start a long-running process in the namespace; the topology stops it on close."""
        return self.topology.spawn(self, argv, name=name, log_path=log_path, env=env, cwd=cwd)

    def pids(self) -> list[int]:
        """PIDs of every process living in the namespace (``ip netns pids``)."""
        out = run_command(["ip", "netns", "pids", self.name], check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    # ---- links and addresses

    def add_address(self, ifname: str, cidr: str) -> None:
        """Add an address; IPv6 addresses get ``nodad`` so they are usable at once."""
        extra = ["nodad"] if ipaddress.ip_interface(cidr).version == 6 else []
        self.ip("addr", "add", cidr, "dev", ifname, *extra)

    def set_link(self, ifname: str, up: bool = True) -> None:
        """Bring an interface up or down (down on the bridge side simulates a cable cut)."""
        self.ip("link", "set", ifname, "up" if up else "down")

    def add_bridge(self, name: str = "br0") -> None:
        """Create a Linux bridge (no STP, no forwarding delay) and bring it up."""
        _check_ifname(name)
        self.ip("link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        self.set_link(name, True)

    def set_master(self, ifname: str, bridge: str) -> None:
        self.ip("link", "set", ifname, "master", bridge)

    def links(self) -> list[dict[str, Any]]:
        return self.ip_json("link", "show")

    def link_is_up(self, ifname: str) -> bool:
        data = self.ip_json("link", "show", "dev", ifname)
        return bool(data) and "UP" in data[0].get("flags", [])

    def addresses(self, ifname: str | None = None) -> list[str]:
        """Addresses (``a.b.c.d/len``) configured in the namespace, optionally on one link."""
        args = ["addr", "show"] + (["dev", ifname] if ifname else [])
        out: list[str] = []
        for link in self.ip_json(*args):
            for info in link.get("addr_info", []):
                out.append(f"{info['local']}/{info['prefixlen']}")
        return out

    # ---- routes

    def add_route(
        self,
        dst: str,
        *,
        via: str | Sequence[str] | None = None,
        dev: str | None = None,
        metric: int | None = None,
        kind: str | None = None,
    ) -> None:
        """Add a route; ``via`` may list several gateways for an ECMP route.

        ``kind`` is a route type such as ``"blackhole"`` or ``"local"``.
        """
        version = ipaddress.ip_network(dst, strict=False).version if dst != "default" else 4
        args = ["-6" if version == 6 else "-4", "route", "add"]
        args += [kind, dst] if kind else [dst]
        if isinstance(via, str):
            args += ["via", via]
        elif via:
            for gw in via:
                args += ["nexthop", "via", gw] + (["dev", dev] if dev else [])
            dev = None
        if dev:
            args += ["dev", dev]
        if metric is not None:
            args += ["metric", str(metric)]
        self.ip(*args)

    def add_default_route(self, via: str) -> None:
        version = ipaddress.ip_address(via).version
        self.add_route("::/0" if version == 6 else "0.0.0.0/0", via=via)

    def routes(self, *, v6: bool = False, table: str = "main") -> list[Route]:
        """The kernel routing table of the namespace (ECMP routes keep all nexthops)."""
        raw = self.ip_json("-6" if v6 else "-4", "route", "show", "table", table)
        return parse_routes(raw, 6 if v6 else 4)

    def route(self, prefix: str) -> Route | None:
        """The kernel route for exactly ``prefix`` in the main table, if any."""
        net = ipaddress.ip_network(prefix, strict=False)
        for r in self.routes(v6=net.version == 6):
            if r.dst == str(net):
                return r
        return None

    def wait_route(
        self,
        prefix: str,
        *,
        gateways: Sequence[str] | None = None,
        count: int | None = None,
        timeout: float = 30.0,
    ) -> Route:
        """Wait until the kernel has a route for ``prefix`` (with these gateways / hop count)."""

        def matching() -> Route | None:
            r = self.route(prefix)
            if r is None:
                return None
            if gateways is not None and r.gateways != tuple(sorted(gateways)):
                return None
            if count is not None and len(r.nexthops) != count:
                return None
            return r

        return wait_until(
            matching,
            timeout=timeout,
            what=f"route {prefix} in {self.short} (gateways={gateways}, count={count})",
            on_timeout=lambda: f"last: {self.route(prefix)}",
        )

    def wait_no_route(self, prefix: str, *, timeout: float = 30.0) -> None:
        """Wait until the kernel has no route for ``prefix``."""
        wait_until(
            lambda: self.route(prefix) is None,
            timeout=timeout,
            what=f"route {prefix} gone from {self.short}",
        )

    # ---- sysctls

    def sysctl(self, key: str, value: str | int) -> None:
        """Set a sysctl inside the namespace (``ip netns exec NS sysctl -w``)."""
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def read_sysctl(self, key: str) -> str:
        return self.run(["sysctl", "-n", key]).stdout.strip()

    def enable_forwarding(self, *, rp_filter: int = 0) -> None:
        """Make this namespace a router: v4 and v6 forwarding on, reverse-path filter off."""
        self.sysctl("net.ipv4.ip_forward", 1)
        self.sysctl("net.ipv6.conf.all.forwarding", 1)
        self.sysctl("net.ipv4.conf.all.rp_filter", rp_filter)
        self.sysctl("net.ipv4.conf.default.rp_filter", rp_filter)


def _check_ifname(name: str) -> None:
    if not name or len(name.encode()) > IFNAMSIZ:
        raise ValueError(f"interface name {name!r} must be 1..{IFNAMSIZ} bytes")


# --------------------------------------------------------------------------- topology


class Topology:
    """A set of namespaces, links and processes that is torn down as one.

    Use as a context manager (or call :meth:`close`): processes are stopped by PID
    (SIGTERM, then SIGKILL), anything else still inside our namespaces is killed, then the
    namespaces are deleted and the work directory removed (unless ``keep_workdir``).
    """

    def __init__(
        self,
        prefix: str | None = None,
        *,
        workdir: Path | None = None,
        keep_workdir: bool = False,
    ) -> None:
        self.prefix = prefix or default_prefix()
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
            # daemons that drop privileges (FRR runs as "frr") must reach their subfolders
            workdir.chmod(0o755)
            owns_workdir = True
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            owns_workdir = False
        self.workdir = workdir
        self._owns_workdir = owns_workdir
        self.keep_workdir = keep_workdir
        self.namespaces: dict[str, Netns] = {}
        self.processes: list[Process] = []
        self._cleanups: list[Callable[[], None]] = []
        self._closed = False
        self._sigterm_installed = False

    # ---- context manager

    def __enter__(self) -> Topology:
        # A plain SIGTERM (``timeout``, a CI runner) would end the process without running
        # ``__exit__`` and leave namespaces and daemons behind: while this block runs, turn it
        # into SystemExit so the cleanup happens. Only when nobody else handles SIGTERM.
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        ):
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
            self._sigterm_installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sigterm_installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._sigterm_installed = False
        self.close()

    def __getitem__(self, short: str) -> Netns:
        return self.namespaces[short]

    def __iter__(self) -> Iterator[Netns]:
        return iter(self.namespaces.values())

    # ---- building

    def ns_name(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    def add_netns(self, short: str, *, router: bool = False) -> Netns:
        """Create namespace ``<prefix>-<short>`` with ``lo`` up (and forwarding if ``router``)."""
        if short in self.namespaces:
            raise ValueError(f"namespace {short!r} already in this topology")
        full = self.ns_name(short)
        run_command(["ip", "netns", "add", full])
        ns = Netns(full, short, self)
        self.namespaces[short] = ns
        ns.set_link("lo", True)
        # no duplicate-address detection: link-local and global v6 addresses usable at once
        ns.sysctl("net.ipv6.conf.all.accept_dad", 0)
        ns.sysctl("net.ipv6.conf.default.accept_dad", 0)
        if router:
            ns.enable_forwarding()
        return ns

    def adopt_netns(self, short: str) -> Netns:
        """Track an existing ``<prefix>-<short>`` namespace (e.g. for ``lab down``)."""
        ns = Netns(self.ns_name(short), short, self)
        self.namespaces[short] = ns
        return ns

    def veth(self, a: Netns, a_if: str, b: Netns, b_if: str, *, up: bool = True) -> None:
        """A veth pair: ``a_if`` created inside ``a``, its peer ``b_if`` directly inside ``b``."""
        _check_ifname(a_if)
        _check_ifname(b_if)
        a.ip("link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name)
        if up:
            a.set_link(a_if, True)
            b.set_link(b_if, True)

    def attach_to_bridge(
        self, lan: Netns, bridge: str, port_if: str, node: Netns, node_if: str
    ) -> None:
        """Cable ``node`` to ``bridge`` in ``lan``: veth ``port_if`` (bridge side) ↔ ``node_if``."""
        self.veth(lan, port_if, node, node_if, up=False)
        lan.set_master(port_if, bridge)
        lan.set_link(port_if, True)
        node.set_link(node_if, True)

    def spawn(
        self,
        ns: Netns,
        argv: Sequence[str],
        *,
        name: str,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Process:
        """Start ``argv`` in ``ns`` as its own process group, output to ``log_path``."""
        if log_path is None:
            log_path = self.workdir / f"{ns.short}-{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                ns.exec_argv(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
        proc = Process(name=name, netns=ns.name, popen=popen, log_path=log_path)
        self.processes.append(proc)
        return proc

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on :meth:`close`, after the processes are stopped (errors ignored)."""
        self._cleanups.append(fn)

    # ---- inspection

    def logs(self, tail: int = 4000) -> str:
        """The tail of every tracked process's log, for a failing test's report."""
        parts = []
        for proc in self.processes:
            text = proc.log_text()[-tail:]
            parts.append(f"----- {proc.netns} {proc.name} (pid {proc.pid}) -----\n{text}")
        return "\n".join(parts)

    # ---- teardown

    def close(self) -> None:
        """Stop processes, kill stragglers in our namespaces, delete namespaces and workdir."""
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self.processes):
            proc.stop(timeout=3.0)
        for ns in self.namespaces.values():
            kill_pids(ns.pids())
        for fn in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                fn()
        for ns in self.namespaces.values():
            run_command(["ip", "netns", "del", ns.name], check=False)
        if self._owns_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    del frame
    raise SystemExit(128 + signum)


def delete_prefixed(prefix: str) -> list[str]:
    """Kill processes in and delete every namespace named ``prefix*`` (for ``lab down``)."""
    names = leftovers(prefix)
    for name in names:
        out = run_command(["ip", "netns", "pids", name], check=False).stdout
        kill_pids([int(p) for p in out.split() if p.isdigit()])
        run_command(["ip", "netns", "del", name], check=False)
    return names
