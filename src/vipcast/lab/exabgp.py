"""ExaBGP 4.2 inside a lab namespace: a peer that logs every update it receives as JSON.

ExaBGP runs in the foreground with its own env file (``daemon.user=root``, no CLI pipes, no
daemonizing), and one API process (:mod:`vipcast.lab.exabgp_relay`) that appends every JSON
message ExaBGP emits to ``events.jsonl`` and forwards lines written to the ``commands`` FIFO
back to ExaBGP. :meth:`ExabgpInstance.routes` replays the received updates into a RIB, and
:meth:`ExabgpInstance.send` announces or withdraws at run time
(``announce route 203.0.113.9/32 next-hop self``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vipcast.lab.bgp_daemon import BgpDaemon
from vipcast.lab.bgpconf import BgpPath, Family, Neighbor, family_of
from vipcast.lab.netns import LabError, Netns, Process, ProcessDied, wait_until
from vipcast.lab.process import SingleProcessDaemon


@dataclass(frozen=True)
class ExabgpConfig:
    asn: int
    router_id: str
    #: the local address of the sessions (ExaBGP 4.2 wants one per neighbor)
    local_address: str
    neighbors: tuple[Neighbor, ...] = ()
    #: prefixes announced at start (next-hop self)
    networks: tuple[str, ...] = ()
    graceful_restart: int | None = None
    #: address to listen on for passive neighbors (empty: do not listen)
    listen_address: str = ""
    #: TCP port ExaBGP connects to / listens on
    port: int = 179


def render_exabgp(cfg: ExabgpConfig, events: Path, commands: Path) -> str:
    """ExaBGP's configuration file for ``cfg``."""
    relay = f"{sys.executable} -m vipcast.lab.exabgp_relay {events} {commands}"
    out = [
        "process relay {",
        f"  run {relay};",
        "  encoder json;",
        "}",
        "",
    ]
    for n in cfg.neighbors:
        out += [
            f"neighbor {n.address} {{",
            f"  router-id {cfg.router_id};",
            f"  local-address {n.local_address or cfg.local_address};",
            f"  local-as {cfg.asn};",
            f"  peer-as {n.remote_as};",
        ]
        if n.password:
            out.append(f'  md5-password "{n.password}";')
        if n.passive:
            out.append("  passive true;")
        if n.hold_time is not None:
            out.append(f"  hold-time {n.hold_time};")
        if n.ebgp_multihop is not None:
            out.append(f"  outgoing-ttl {n.ebgp_multihop};")
        if n.ttl_security_hops is not None:
            out.append("  outgoing-ttl 255;")
            out.append(f"  incoming-ttl {256 - n.ttl_security_hops};")
        if n.description:
            out.append(f'  description "{n.description}";')
        out.append("  family {")
        out += [f"    {fam} unicast;" for fam in n.active_families]
        out.append("  }")
        if cfg.graceful_restart is not None:
            out.append(f"  capability {{ graceful-restart {cfg.graceful_restart}; }}")
        out += [
            "  api {",
            "    processes [ relay ];",
            "    neighbor-changes;",
            "    receive { parsed; update; notification; open; }",
            "  }",
        ]
        for prefix in cfg.networks:
            if family_of(prefix) in n.active_families:
                out.append(f"  static {{ route {prefix} next-hop self; }}")
        out += ["}", ""]
    return "\n".join(out)


def render_env(cfg: ExabgpConfig, directory: Path) -> str:
    """ExaBGP's environment file: root, foreground, no CLI pipes, logs to stdout."""
    return "\n".join(
        [
            "[exabgp.api]",
            "ack = false",
            "cli = false",
            "encoder = json",
            "respawn = false",
            "[exabgp.daemon]",
            "daemonize = false",
            "drop = false",
            "user = 'root'",
            f"pid = '{directory / 'exabgp.pid'}'",
            "[exabgp.log]",
            "destination = 'stdout'",
            "level = INFO",
            "[exabgp.tcp]",
            f"bind = '{cfg.listen_address}'",
            f"port = {cfg.port}",
            "[exabgp.bgp]",
            "openwait = 60",
            "",
        ]
    )


def _community(value: Any) -> str:
    if isinstance(value, list):
        return ":".join(str(v) for v in value)
    return str(value)


def replay(events: list[dict[str, Any]]) -> dict[str, dict[str, BgpPath]]:
    """Apply received updates in order: prefix -> {peer address: path}."""
    rib: dict[str, dict[str, BgpPath]] = {}
    for ev in events:
        neighbor = ev.get("neighbor", {})
        peer = str(neighbor.get("address", {}).get("peer", ""))
        if ev.get("type") == "state" and neighbor.get("state") == "down":
            for paths in rib.values():
                paths.pop(peer, None)
            continue
        update = neighbor.get("message", {}).get("update")
        if ev.get("type") != "update" or not isinstance(update, dict):
            continue
        for nlris in update.get("withdraw", {}).values():
            for nlri in nlris:
                prefix = nlri.get("nlri") if isinstance(nlri, dict) else nlri
                rib.get(str(prefix), {}).pop(peer, None)
        attrs = update.get("attribute", {})
        for by_nexthop in update.get("announce", {}).values():
            for nexthop, nlris in by_nexthop.items():
                for nlri in nlris:
                    prefix = str(nlri.get("nlri") if isinstance(nlri, dict) else nlri)
                    rib.setdefault(prefix, {})[peer] = BgpPath(
                        prefix=prefix,
                        nexthop=nexthop,
                        as_path=tuple(int(a) for a in attrs.get("as-path", [])),
                        communities=tuple(_community(c) for c in attrs.get("community", [])),
                        large_communities=tuple(
                            _community(c) for c in attrs.get("large-community", [])
                        ),
                        local_pref=attrs.get("local-preference"),
                        med=attrs.get("med"),
                        peer=peer,
                        origin=attrs.get("origin"),
                    )
    return {p: paths for p, paths in rib.items() if paths}


@dataclass
class ExabgpInstance(SingleProcessDaemon, BgpDaemon):
    daemon: ClassVar[str] = "ExaBGP"
    netns: Netns
    directory: Path
    config: ExabgpConfig
    process: Process = field(repr=False)

    @property
    def events_path(self) -> Path:
        return self.directory / "events.jsonl"

    @property
    def commands_path(self) -> Path:
        return self.directory / "commands"

    def events(self) -> list[dict[str, Any]]:
        """Every JSON message ExaBGP passed to the API process, in order."""
        if not self.events_path.exists():
            return []
        out = []
        for line in self.events_path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                ev = json.loads(line)
                if isinstance(ev, dict):
                    out.append(ev)
        return out

    def updates(self) -> list[dict[str, Any]]:
        """The received UPDATE messages (``neighbor.message.update`` of each)."""
        return [
            ev["neighbor"]["message"]["update"]
            for ev in self.events()
            if ev.get("type") == "update"
        ]

    def neighbor_states(self) -> dict[str, str]:
        states = {n.address: "Idle" for n in self.config.neighbors}
        for ev in self.events():
            if ev.get("type") == "state":
                n = ev.get("neighbor", {})
                peer = str(n.get("address", {}).get("peer", ""))
                states[peer] = "Established" if n.get("state") == "up" else str(n.get("state"))
        return states

    def routes(self, family: Family = "ipv4") -> dict[str, list[BgpPath]]:
        """What the peers currently announce to us (updates replayed), by prefix."""
        return {
            prefix: list(paths.values())
            for prefix, paths in replay(self.events()).items()
            if family_of(prefix) == family
        }

    def route(self, prefix: str) -> list[BgpPath]:
        return self.routes(family_of(prefix)).get(prefix, [])

    def send(self, command: str) -> None:
        """Send one API command to ExaBGP (e.g. ``announce route 203.0.113.9/32 next-hop self``)."""
        fd = os.open(self.commands_path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, (command.rstrip("\n") + "\n").encode())
        finally:
            os.close(fd)


def start_exabgp(
    netns: Netns, config: ExabgpConfig, directory: Path, *, timeout: float = 30.0
) -> ExabgpInstance:
    """Write config and env under ``directory`` and run ExaBGP in ``netns``."""
    directory.mkdir(parents=True, exist_ok=True)
    events, commands = directory / "events.jsonl", directory / "commands"
    events.touch()
    if not commands.exists():
        os.mkfifo(commands)
    conf = directory / "exabgp.conf"
    conf.write_text(render_exabgp(config, events, commands))
    env_file = directory / "exabgp.env"
    env_file.write_text(render_env(config, directory))
    env = {k: v for k, v in os.environ.items() if not k.startswith("exabgp")}
    argv = ["exabgp", "--env", str(env_file), str(conf)]
    proc = netns.spawn(argv, name="exabgp", log_path=directory / "exabgp.log", env=env)
    inst = ExabgpInstance(netns=netns, directory=directory, config=config, process=proc)

    def ready() -> bool:
        if not proc.alive():
            raise ProcessDied(f"exabgp exited:\n{inst.log_text()[-3000:]}")
        # configuration parsed; the relay process starts with it
        return "loaded new configuration" in inst.log_text() or bool(inst.events())

    try:
        wait_until(ready, timeout=timeout, what="exabgp started", on_timeout=inst.log_text)
    except (LabError, TimeoutError):
        with contextlib.suppress(Exception):
            inst.stop()
        raise
    return inst
