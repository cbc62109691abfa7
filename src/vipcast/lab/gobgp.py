"""GoBGP 3 inside a lab namespace: ``gobgpd -f conf.toml`` and the ``gobgp`` CLI.

gobgpd's gRPC API listens on ``127.0.0.1:<api_port>`` *inside* the namespace (each namespace
has its own loopback, so instances never collide); the CLI therefore runs in the namespace
too. GoBGP does not touch the kernel routing table (no zebra here): it is a BGP peer whose RIB
tests read with :meth:`GobgpInstance.routes`. Prefixes are originated at start
(``networks``) or at run time with :meth:`GobgpInstance.announce`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vipcast.lab.bgp_daemon import BgpDaemon
from vipcast.lab.bgpconf import BgpPath, Family, Neighbor, family_of
from vipcast.lab.netns import LabError, Netns, Process, ProcessDied, wait_until
from vipcast.lab.process import SingleProcessDaemon

#: GoBGP session_state values (API enum) by name and number
_STATES = {
    "1": "Idle",
    "2": "Connect",
    "3": "Active",
    "4": "OpenSent",
    "5": "OpenConfirm",
    "6": "Established",
    "idle": "Idle",
    "connect": "Connect",
    "active": "Active",
    "opensent": "OpenSent",
    "openconfirm": "OpenConfirm",
    "established": "Established",
}


@dataclass(frozen=True)
class GobgpConfig:
    asn: int
    router_id: str
    neighbors: tuple[Neighbor, ...] = ()
    #: prefixes announced once the daemon is up (``gobgp global rib add``)
    networks: tuple[str, ...] = ()
    #: BGP listen port (-1: do not listen)
    listen_port: int = 179
    api_port: int = 50051
    graceful_restart: bool = True


def _q(value: str) -> str:
    return json.dumps(value)


def render_gobgp(cfg: GobgpConfig) -> str:
    """gobgpd's TOML configuration for ``cfg``."""
    out = [
        "[global.config]",
        f"  as = {cfg.asn}",
        f"  router-id = {_q(cfg.router_id)}",
        f"  port = {cfg.listen_port}",
        "",
    ]
    for n in cfg.neighbors:
        out += [
            "[[neighbors]]",
            "  [neighbors.config]",
            f"    neighbor-address = {_q(n.address)}",
            f"    peer-as = {n.remote_as}",
        ]
        if n.password:
            out.append(f"    auth-password = {_q(n.password)}")
        if n.description:
            out.append(f"    description = {_q(n.description)}")
        transport = []
        if n.passive:
            transport.append("    passive-mode = true")
        if n.port is not None:
            transport.append(f"    remote-port = {n.port}")
        if n.local_address:
            transport.append(f"    local-address = {_q(n.local_address)}")
        if transport:
            out += ["  [neighbors.transport.config]", *transport]
        if n.ebgp_multihop is not None:
            out += [
                "  [neighbors.ebgp-multihop.config]",
                "    enabled = true",
                f"    multihop-ttl = {n.ebgp_multihop}",
            ]
        if n.ttl_security_hops is not None:
            out += [
                "  [neighbors.ttl-security.config]",
                "    enabled = true",
                f"    ttl-min = {256 - n.ttl_security_hops}",
            ]
        timers = []
        if n.hold_time is not None:
            timers.append(f"    hold-time = {n.hold_time}")
        if n.keepalive is not None:
            timers.append(f"    keepalive-interval = {n.keepalive}")
        timers.append(f"    connect-retry = {n.connect_retry or 3}")
        out += ["  [neighbors.timers.config]", *timers]
        if cfg.graceful_restart:
            out += ["  [neighbors.graceful-restart.config]", "    enabled = true"]
        for fam in n.active_families:
            out += [
                "  [[neighbors.afi-safis]]",
                "    [neighbors.afi-safis.config]",
                f'      afi-safi-name = "{fam}-unicast"',
            ]
            if cfg.graceful_restart:
                out += [
                    "    [neighbors.afi-safis.mp-graceful-restart.config]",
                    "      enabled = true",
                ]
        out.append("")
    return "\n".join(out)


def _gobgp_path(prefix: str, p: dict[str, Any]) -> BgpPath:
    nexthop: str | None = None
    as_path: tuple[int, ...] = ()
    communities: tuple[str, ...] = ()
    large: tuple[str, ...] = ()
    local_pref: int | None = None
    med: int | None = None
    origin: str | None = None
    for attr in p.get("attrs", []):
        kind = attr.get("type")
        if kind == 1:
            origin = {0: "IGP", 1: "EGP", 2: "incomplete"}.get(attr.get("value"))
        elif kind == 2:
            as_path = tuple(a for seg in attr.get("as_paths", []) for a in seg.get("asns", []))
        elif kind == 3:
            nexthop = attr.get("nexthop")
        elif kind == 4:
            med = attr.get("metric")
        elif kind == 5:
            local_pref = attr.get("value")
        elif kind == 8:
            communities = tuple(f"{c >> 16}:{c & 0xFFFF}" for c in attr.get("communities", []))
        elif kind == 14:
            nexthop = nexthop or attr.get("nexthop")
        elif kind == 32:
            large = tuple(
                f"{c['ASN']}:{c['LocalData1']}:{c['LocalData2']}" for c in attr.get("value", [])
            )
    return BgpPath(
        prefix=prefix,
        nexthop=nexthop,
        as_path=as_path,
        communities=communities,
        large_communities=large,
        local_pref=local_pref,
        med=med,
        best=bool(p.get("best")),
        peer=p.get("neighbor-ip") or p.get("source-id"),
        origin=origin,
        stale=bool(p.get("stale")),
    )


@dataclass
class GobgpInstance(SingleProcessDaemon, BgpDaemon):
    daemon: ClassVar[str] = "GoBGP"
    netns: Netns
    directory: Path
    config: GobgpConfig
    process: Process = field(repr=False)

    def cli(self, *args: str, timeout: float = 20.0) -> str:
        """Run ``gobgp -p API_PORT ARGS`` inside the namespace."""
        argv = ["gobgp", "-u", "127.0.0.1", "-p", str(self.config.api_port), *args]
        return self.netns.run(argv, timeout=timeout).stdout

    def cli_json(self, *args: str) -> Any:
        out = self.cli(*args, "-j").strip()
        return json.loads(out) if out else None

    def neighbor_states(self) -> dict[str, str]:
        data = self.cli_json("neighbor") or []
        states: dict[str, str] = {}
        for n in data:
            addr = n.get("conf", {}).get("neighbor_address") or n.get("state", {}).get(
                "neighbor_address"
            )
            raw = str(n.get("state", {}).get("session_state", "")).lower()
            states[str(addr)] = _STATES.get(raw, raw)
        return states

    def expected_peers(self, states: dict[str, str]) -> tuple[str, ...]:
        return tuple(n.address for n in self.config.neighbors)

    def routes(self, family: Family = "ipv4") -> dict[str, list[BgpPath]]:
        """The global RIB: prefix -> paths."""
        data = self.cli_json("global", "rib", "-a", family) or {}
        return {prefix: [_gobgp_path(prefix, p) for p in paths] for prefix, paths in data.items()}

    def route(self, prefix: str) -> list[BgpPath]:
        return self.routes(family_of(prefix)).get(prefix, [])

    def announce(
        self,
        prefix: str,
        *,
        communities: tuple[str, ...] = (),
        large_communities: tuple[str, ...] = (),
        nexthop: str | None = None,
    ) -> None:
        """Originate ``prefix`` (``gobgp global rib add``)."""
        args = ["global", "rib", "add", prefix, "-a", family_of(prefix)]
        if nexthop:
            args += ["nexthop", nexthop]
        if communities:
            args += ["community", ",".join(communities)]
        if large_communities:
            args += ["large-community", ",".join(large_communities)]
        self.cli(*args)

    def withdraw(self, prefix: str) -> None:
        self.cli("global", "rib", "del", prefix, "-a", family_of(prefix))


def start_gobgp(
    netns: Netns, config: GobgpConfig, directory: Path, *, timeout: float = 30.0
) -> GobgpInstance:
    """Write ``gobgpd.toml`` under ``directory`` and run gobgpd in ``netns``."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "gobgpd.toml"
    conf.write_text(render_gobgp(config))
    argv = [
        "gobgpd", "-f", str(conf), "-p", "-l", "info",
        "--api-hosts", f"127.0.0.1:{config.api_port}", "--pprof-disable",
    ]  # fmt: skip
    proc = netns.spawn(argv, name="gobgpd", log_path=directory / "gobgpd.log")
    inst = GobgpInstance(netns=netns, directory=directory, config=config, process=proc)

    def ready() -> bool:
        if not proc.alive():
            raise ProcessDied(f"gobgpd exited:\n{inst.log_text()[-3000:]}")
        inst.cli("global")
        return True

    try:
        wait_until(ready, timeout=timeout, what="gobgpd API", on_timeout=inst.log_text)
        for prefix in config.networks:
            inst.announce(prefix)
    except (LabError, TimeoutError):
        with contextlib.suppress(Exception):
            inst.stop()
        raise
    return inst
