"""FRR 8.4 inside a lab namespace: zebra + bgpd (+ bfdd, staticd), no watchfrr.

Every daemon runs in the foreground with per-instance paths under one directory: config
files, pid files, vty sockets (``--vty_socket DIR``), the zebra API socket (``-z``) and the
bfdd control socket, so several FRR instances coexist and none touches ``/var/run/frr``.
Queries go through ``vtysh --vty_socket DIR -d DAEMON -c "... json"``.

Example::

    frr = start_frr(ns, FrrConfig(asn=65000, router_id="192.0.2.1",
                                  neighbors=(Neighbor("192.0.2.2", 65001),)), topo.workdir / "r")
    wait_until(lambda: frr.neighbor_state("192.0.2.2") == "Established")
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vipcast.lab.bgp_daemon import BgpDaemon
from vipcast.lab.bgpconf import BgpPath, Family, Neighbor, family_of
from vipcast.lab.netns import (
    LabError,
    Netns,
    Process,
    ProcessDied,
    Route,
    run_command,
    wait_until,
)

FRR_SBIN = Path("/usr/lib/frr")
FRR_USER = "frr"


@dataclass(frozen=True)
class BfdProfile:
    """An FRR ``bfd`` profile (intervals in milliseconds)."""

    name: str
    detect_multiplier: int = 3
    receive_interval: int = 300
    transmit_interval: int = 300
    passive: bool = False


@dataclass(frozen=True)
class FrrConfig:
    """The BGP router an FRR instance plays."""

    asn: int
    router_id: str
    neighbors: tuple[Neighbor, ...] = ()
    #: prefixes this router originates (``network`` statements, import-check off)
    networks: tuple[str, ...] = ()
    #: static routes ``(prefix, nexthop)``; nexthop may be ``"blackhole"`` (runs staticd)
    static_routes: tuple[tuple[str, str], ...] = ()
    maximum_paths: int = 8
    multipath_relax: bool = True
    graceful_restart: bool = True
    #: seconds a restarting peer's stale routes are kept (``bgp graceful-restart stalepath-time``)
    stalepath_time: int | None = None
    bfd_profiles: tuple[BfdProfile, ...] = ()
    #: run bfdd even when no neighbor asks for BFD
    bfdd: bool = False
    #: seconds between connection attempts for neighbors that set no ``connect_retry``
    #: (FRR's own default is 10 s; the lab wants peers started later to be picked up fast)
    connect_retry: int | None = 2
    #: TCP port bgpd listens on (0: do not listen)
    listen_port: int = 179
    hostname: str = "frr"
    #: raw lines appended inside ``router bgp`` (before the address families)
    extra_bgp: tuple[str, ...] = ()
    #: raw configuration appended to bgpd's file (route-maps, prefix-lists, ...)
    extra: str = ""

    @property
    def wants_bfdd(self) -> bool:
        return self.bfdd or bool(self.bfd_profiles) or any(n.bfd for n in self.neighbors)


def render_bgpd(cfg: FrrConfig) -> str:
    """bgpd's configuration file for ``cfg``."""
    lines = [
        "frr defaults datacenter",
        f"hostname {cfg.hostname}",
        "!",
        f"router bgp {cfg.asn}",
        f" bgp router-id {cfg.router_id}",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        " no bgp network import-check",
        " bgp log-neighbor-changes",
    ]
    if cfg.multipath_relax:
        lines.append(" bgp bestpath as-path multipath-relax")
    if cfg.graceful_restart:
        lines.append(" bgp graceful-restart")
        if cfg.stalepath_time is not None:
            lines.append(f" bgp graceful-restart stalepath-time {cfg.stalepath_time}")
    for n in cfg.neighbors:
        a = n.address
        lines.append(f" neighbor {a} remote-as {n.remote_as}")
        if n.description:
            lines.append(f" neighbor {a} description {n.description}")
        if n.port is not None:
            lines.append(f" neighbor {a} port {n.port}")
        if n.password:
            lines.append(f" neighbor {a} password {n.password}")
        if n.ebgp_multihop is not None:
            lines.append(f" neighbor {a} ebgp-multihop {n.ebgp_multihop}")
        if n.ttl_security_hops is not None:
            lines.append(f" neighbor {a} ttl-security hops {n.ttl_security_hops}")
        if n.bfd:
            lines.append(f" neighbor {a} bfd")
            if n.bfd_profile:
                lines.append(f" neighbor {a} bfd profile {n.bfd_profile}")
        if n.passive:
            lines.append(f" neighbor {a} passive")
        if n.keepalive is not None and n.hold_time is not None:
            lines.append(f" neighbor {a} timers {n.keepalive} {n.hold_time}")
        retry = n.connect_retry if n.connect_retry is not None else cfg.connect_retry
        if retry is not None:
            lines.append(f" neighbor {a} timers connect {retry}")
        if n.local_address:
            lines.append(f" neighbor {a} update-source {n.local_address}")
    lines.extend(f" {line}" for line in cfg.extra_bgp)
    for family in ("ipv4", "ipv6"):
        lines.append(f" address-family {family} unicast")
        lines.append(f"  maximum-paths {cfg.maximum_paths}")
        lines.append(f"  maximum-paths ibgp {cfg.maximum_paths}")
        lines.extend(f"  network {p}" for p in cfg.networks if family_of(p) == family)
        lines.extend(
            f"  neighbor {n.address} activate" for n in cfg.neighbors if family in n.active_families
        )
        lines.append(" exit-address-family")
    lines += ["!", cfg.extra, ""]
    return "\n".join(lines)


def render_bfdd(cfg: FrrConfig) -> str:
    lines = [f"hostname {cfg.hostname}", "bfd"]
    for p in cfg.bfd_profiles:
        lines += [
            f" profile {p.name}",
            f"  detect-multiplier {p.detect_multiplier}",
            f"  receive-interval {p.receive_interval}",
            f"  transmit-interval {p.transmit_interval}",
        ]
        if p.passive:
            lines.append("  passive-mode")
        lines.append(" exit")
    lines += ["exit", ""]
    return "\n".join(lines)


def render_staticd(cfg: FrrConfig) -> str:
    lines = [f"hostname {cfg.hostname}"]
    for prefix, nexthop in cfg.static_routes:
        kw = "ipv6" if family_of(prefix) == "ipv6" else "ip"
        hop = "Null0" if nexthop == "blackhole" else nexthop
        lines.append(f"{kw} route {prefix} {hop}")
    lines.append("")
    return "\n".join(lines)


def session_counts_of(record: dict[str, Any]) -> tuple[int, int]:
    """(sessions established, sessions dropped) of one ``show bgp neighbors json`` record."""
    return (int(record.get("connectionsEstablished", 0)),
            int(record.get("connectionsDropped", 0)))


@dataclass
class FrrInstance(BgpDaemon):
    """A running FRR in one namespace; stop() ends every daemon of it."""

    daemon: ClassVar[str] = "FRR"

    netns: Netns
    directory: Path
    config: FrrConfig
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The bgpd PID."""
        return self.processes["bgpd"].pid

    def alive(self) -> bool:
        return all(p.alive() for p in self.processes.values())

    def stop(self) -> None:
        for name in ("bgpd", "bfdd", "staticd", "zebra"):
            proc = self.processes.get(name)
            if proc is not None:
                proc.stop()
        self.remove_crashlog_dirs()

    def remove_crashlog_dirs(self) -> None:
        """Remove FRR's per-PID ``/var/tmp/frr/<daemon>.<pid>`` folders of our daemons."""
        for name, proc in self.processes.items():
            if not proc.alive():
                shutil.rmtree(f"/var/tmp/frr/{name}.{proc.pid}", ignore_errors=True)

    def log_text(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{proc.log_text()}" for name, proc in self.processes.items()
        )

    # ---- vtysh

    def vtysh(self, *commands: str, daemon: str | None = "bgpd", timeout: float = 20.0) -> str:
        """Run vtysh commands against this instance; return the text output."""
        argv = ["vtysh", "--vty_socket", str(self.directory)]
        if daemon:
            argv += ["-d", daemon]
        for c in commands:
            argv += ["-c", c]
        return run_command(argv, timeout=timeout).stdout

    def vtysh_json(self, command: str, daemon: str | None = "bgpd") -> Any:
        out = self.vtysh(command, daemon=daemon).strip()
        return json.loads(out) if out else {}

    def configure(self, *lines: str, daemon: str = "bgpd") -> str:
        """Apply configuration lines at run time (``configure terminal`` then ``lines``)."""
        return self.vtysh("configure terminal", *lines, daemon=daemon)

    # ---- BGP state

    def neighbors(self) -> dict[str, dict[str, Any]]:
        """``show bgp neighbors json``: neighbor address -> FRR's record."""
        data = self.vtysh_json("show bgp neighbors json")
        return data if isinstance(data, dict) else {}

    def session_counts(self) -> dict[str, tuple[int, int]]:
        """Neighbor address -> (sessions established, sessions dropped) since bgpd started:
        FRR's own counters, what tells a flap that came and went."""
        return {a: session_counts_of(v) for a, v in self.neighbors().items()}

    def neighbor_states(self) -> dict[str, str]:
        """Neighbor address -> FSM state ("Established", "Active", ...)."""
        return {a: str(v.get("bgpState", "")) for a, v in self.neighbors().items()}

    def neighbor_state(self, address: str) -> str | None:
        return self.neighbor_states().get(address)

    def expected_peers(self, states: dict[str, str]) -> tuple[str, ...]:
        return tuple(n.address for n in self.config.neighbors)

    def routes(self, family: Family = "ipv4") -> dict[str, list[BgpPath]]:
        """The BGP table of ``family``: prefix -> paths (with full attributes)."""
        table = self.vtysh_json(f"show bgp {family} unicast json")
        routes = table.get("routes", {}) if isinstance(table, dict) else {}
        # FRR 8.4 has no detailed JSON dump of a whole table: ask prefix by prefix
        return {prefix: self.route(prefix) for prefix in sorted(routes)}

    def route(self, prefix: str) -> list[BgpPath]:
        """All paths for ``prefix`` (empty when FRR has none)."""
        data = self.vtysh_json(f"show bgp {family_of(prefix)} unicast {prefix} json")
        if not isinstance(data, dict):
            return []
        return [_frr_path(prefix, p) for p in data.get("paths", [])]

    def wait_paths(self, prefix: str, count: int = 1, *, timeout: float = 30.0) -> list[BgpPath]:
        """Wait until FRR holds exactly ``count`` paths for ``prefix`` (0: gone); return them."""

        def ready() -> list[BgpPath] | None:
            paths = self.route(prefix)
            return paths if len(paths) == count else None

        if count == 0:
            wait_until(lambda: not self.route(prefix), timeout=timeout, what=f"{prefix} gone")
            return []
        return wait_until(
            ready,
            timeout=timeout,
            what=f"{count} path(s) for {prefix} in FRR {self.netns.short}",
            on_timeout=lambda: f"paths: {self.route(prefix)}",
        )

    def received_prefixes(self, neighbor: str, family: Family | None = None) -> list[str]:
        """Prefixes accepted from ``neighbor`` (``show bgp ... neighbors X routes json``)."""
        fam = family or ("ipv6" if ":" in neighbor else "ipv4")
        data = self.vtysh_json(f"show bgp {fam} unicast neighbors {neighbor} routes json")
        return sorted(data.get("routes", {})) if isinstance(data, dict) else []

    def bfd_peers(self) -> list[dict[str, Any]]:
        """``show bfd peers json`` from bfdd."""
        data = self.vtysh_json("show bfd peers json", daemon="bfdd")
        return data if isinstance(data, list) else []

    def kernel_routes(self, *, v6: bool = False) -> list[Route]:
        """The namespace's kernel table (what zebra installed, ECMP as nexthops)."""
        return self.netns.routes(v6=v6)


def _communities(attr: Any) -> tuple[str, ...]:
    if isinstance(attr, dict):
        text = str(attr.get("string", ""))
        return tuple(text.split()) if text else ()
    return ()


def _frr_path(prefix: str, p: dict[str, Any]) -> BgpPath:
    hops = p.get("nexthops") or []
    nexthop = hops[0].get("ip") if hops else None
    aspath = p.get("aspath") or p.get("path")
    as_text = str(aspath.get("string", "")) if isinstance(aspath, dict) else str(aspath or "")
    as_path = tuple(int(x) for x in as_text.split() if x.isdigit())
    best = p.get("bestpath")
    peer = p.get("peer", {})
    return BgpPath(
        prefix=prefix,
        nexthop=nexthop,
        as_path=as_path,
        communities=_communities(p.get("community")),
        large_communities=_communities(p.get("largeCommunity")),
        local_pref=p.get("locPrf", p.get("localpref")),
        med=p.get("metric", p.get("med")),
        best=bool(best.get("overall")) if isinstance(best, dict) else bool(best),
        multipath=bool(p.get("multipath")),
        peer=peer.get("peerId") if isinstance(peer, dict) else p.get("peerId"),
        origin=p.get("origin"),
        stale=bool(p.get("stale")),
    )


def start_frr(
    netns: Netns,
    config: FrrConfig,
    directory: Path,
    *,
    log_level: str = "informational",
    timeout: float = 30.0,
) -> FrrInstance:
    """Write configs under ``directory`` and start zebra, bgpd (and bfdd/staticd) in ``netns``.

    Returns once bgpd answers on its vty socket.
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)  # the daemons drop to the frr user and write pid files/sockets here
    files = {"zebra": f"hostname {config.hostname}\n", "bgpd": render_bgpd(config)}
    if config.wants_bfdd:
        files["bfdd"] = render_bfdd(config)
    if config.static_routes:
        files["staticd"] = render_staticd(config)
    for daemon, text in files.items():
        (directory / f"{daemon}.conf").write_text(text)
    zsock = directory / "zserv.api"
    inst = FrrInstance(netns=netns, directory=directory, config=config)
    netns.topology.add_cleanup(inst.remove_crashlog_dirs)

    def launch(daemon: str, *extra: str) -> None:
        argv = [
            str(FRR_SBIN / daemon),
            "-u", FRR_USER, "-g", FRR_USER,
            "-f", str(directory / f"{daemon}.conf"),
            "-i", str(directory / f"{daemon}.pid"),
            "--vty_socket", str(directory),
            "-z", str(zsock),
            "-A", "127.0.0.1", "-P", "0",
            "--log", "stdout", "--log-level", log_level,
            *extra,
        ]  # fmt: skip
        inst.processes[daemon] = netns.spawn(
            argv, name=f"frr-{daemon}", log_path=directory / f"{daemon}.log"
        )

    def running(ready: bool) -> bool:
        dead = [name for name, proc in inst.processes.items() if not proc.alive()]
        if dead:
            raise ProcessDied(f"FRR {', '.join(dead)} exited:\n{inst.log_text()[-3000:]}")
        return ready

    try:
        launch("zebra")
        wait_until(
            lambda: running(zsock.exists() and (directory / "zebra.vty").exists()),
            timeout=timeout,
            what="zebra socket",
            on_timeout=inst.log_text,
        )
        if "bfdd" in files:
            launch("bfdd", "--bfdctl", str(directory / "bfdd.sock"))
        if "staticd" in files:
            launch("staticd")
        launch("bgpd", "-p", str(config.listen_port))
        wait_until(
            lambda: (
                running((directory / "bgpd.vty").exists()) and inst.vtysh("show bgp summary json")
            ),
            timeout=timeout,
            what="bgpd vty",
            on_timeout=inst.log_text,
        )
    except (LabError, TimeoutError):
        with contextlib.suppress(Exception):
            inst.stop()
        raise
    return inst
