"""BIRD 2 inside a lab namespace: ``bird -f -c CONF -s SOCK -P PID``, queried with ``birdc``.

The generated configuration has one BGP protocol per neighbor (named ``n1``, ``n2``, ... in
neighbor order), a kernel protocol per family exporting BGP routes to the namespace's kernel
table (``merge paths`` on, so equal paths become one ECMP route), static blackhole routes for
the prefixes it originates, and a BFD protocol when a neighbor asks for BFD. BIRD has no JSON
output; :func:`parse_routes` reads ``show route all``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

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
from vipcast.lab.process import SingleProcessDaemon


@dataclass(frozen=True)
class BirdConfig:
    asn: int
    router_id: str
    neighbors: tuple[Neighbor, ...] = ()
    #: prefixes BIRD originates (static blackholes exported to BGP, not to the kernel)
    networks: tuple[str, ...] = ()
    graceful_restart: bool = True
    #: install BGP routes into the namespace's kernel table
    kernel_export: bool = True
    #: BFD intervals (ms) when a neighbor has ``bfd=True``
    bfd_interval_ms: int = 300
    bfd_multiplier: int = 3
    #: raw configuration appended at the end
    extra: str = ""


def protocol_name(index: int) -> str:
    """The BGP protocol name of the ``index``-th neighbor (0-based)."""
    return f"n{index + 1}"


def _channel(family: Family, cfg: BirdConfig) -> str:
    del cfg
    return (
        f"  {family} {{\n"
        "    import all;\n"
        "    export where source ~ [ RTS_STATIC, RTS_BGP ];\n"
        "  };\n"
    )


def render_bird(cfg: BirdConfig, log_path: Path) -> str:
    """BIRD's configuration file for ``cfg``."""
    out = [
        f'log "{log_path}" all;',
        f"router id {cfg.router_id};",
        "protocol device { scan time 5; }",
    ]
    if cfg.kernel_export:
        for fam in ("ipv4", "ipv6"):
            out.append(
                f"protocol kernel kernel_{fam} {{\n"
                "  merge paths on;\n"
                f"  {fam} {{ import none; export where source = RTS_BGP; }};\n"
                "}"
            )
    for fam in ("ipv4", "ipv6"):
        nets = [p for p in cfg.networks if family_of(p) == fam]
        routes = "".join(f"  route {p} blackhole;\n" for p in nets)
        out.append(f"protocol static static_{fam} {{\n  {fam};\n{routes}}}")
    if any(n.bfd for n in cfg.neighbors):
        out.append(
            "protocol bfd {\n"
            f'  interface "*" {{ interval {cfg.bfd_interval_ms} ms;'
            f" multiplier {cfg.bfd_multiplier}; }};\n"
            "}"
        )
    for i, n in enumerate(cfg.neighbors):
        body = [f"  local as {cfg.asn};"]
        port = f" port {n.port}" if n.port is not None else ""
        body.append(f"  neighbor {n.address} as {n.remote_as}{port};")
        if n.local_address:
            body.append(f"  source address {n.local_address};")
        if n.password:
            body.append(f'  password "{n.password}";')
        if n.ebgp_multihop is not None:
            body.append(f"  multihop {n.ebgp_multihop};")
        if n.ttl_security_hops is not None:
            body.append("  ttl security on;")
            if n.ttl_security_hops > 1:
                body.append(f"  multihop {n.ttl_security_hops};")
        if n.bfd:
            body.append("  bfd on;")
        if n.passive:
            body.append("  passive on;")
        if n.hold_time is not None:
            body.append(f"  hold time {n.hold_time};")
        if n.keepalive is not None:
            body.append(f"  keepalive time {n.keepalive};")
        # lab pace: retry fast, and do not sit out a minute after an error (BIRD's default)
        body.append(f"  connect retry time {n.connect_retry or 3};")
        body.append("  error wait time 1, 10;")
        body.append("  start delay time 1;")
        if cfg.graceful_restart:
            body.append("  graceful restart on;")
        if n.description:
            body.append(f'  description "{n.description}";')
        channels = "".join(_channel(f, cfg) for f in n.active_families)
        out.append(
            f"protocol bgp {protocol_name(i)} {{\n" + "\n".join(body) + "\n" + channels + "}"
        )
    out += [cfg.extra, ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- parsing

_ROUTE_HEAD = re.compile(
    r"^(?P<prefix>\S+/\d+)?\s+(?P<kind>unicast|blackhole|unreachable|prohibit)\s+"
    r"\[(?P<proto>\S+)\s[^\]]*\]\s*(?P<best>\*)?"
)


def _bird_communities(value: str) -> tuple[str, ...]:
    return tuple(
        ":".join(part.strip() for part in m.split(",")) for m in re.findall(r"\(([^)]*)\)", value)
    )


@dataclass
class _PathDraft:
    """A path being read from ``show route all`` lines."""

    peer: str
    best: bool
    nexthop: str | None = None
    as_path: tuple[int, ...] = ()
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    local_pref: int | None = None
    med: int | None = None
    origin: str | None = None

    def path(self, prefix: str) -> BgpPath:
        return BgpPath(
            prefix=prefix,
            nexthop=self.nexthop,
            as_path=self.as_path,
            communities=self.communities,
            large_communities=self.large_communities,
            local_pref=self.local_pref,
            med=self.med,
            best=self.best,
            peer=self.peer,
            origin=self.origin,
        )


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _first_word(text: str) -> str | None:
    words = text.split()
    return words[0] if words else None


def parse_routes(text: str) -> dict[str, list[BgpPath]]:
    """Parse ``birdc show route all`` output into prefix -> paths (BGP attributes kept).

    Lines it does not understand are skipped.
    """
    result: dict[str, list[BgpPath]] = {}
    draft: _PathDraft | None = None
    prefix: str | None = None

    def flush() -> None:
        if draft is not None and prefix is not None:
            result.setdefault(prefix, []).append(draft.path(prefix))

    for line in text.splitlines():
        m = _ROUTE_HEAD.match(line)
        if m:
            flush()
            prefix = m.group("prefix") or prefix
            draft = _PathDraft(peer=m.group("proto"), best=bool(m.group("best")))
            continue
        if draft is None:
            continue
        key, _, value = line.strip().partition(":")
        if key.startswith("via "):
            draft.nexthop = draft.nexthop or _first_word(key[4:])
        elif key == "BGP.as_path":
            draft.as_path = tuple(int(x) for x in value.split() if x.isdigit())
        elif key == "BGP.next_hop":
            draft.nexthop = _first_word(value)
        elif key == "BGP.local_pref":
            draft.local_pref = _int(value)
        elif key == "BGP.med":
            draft.med = _int(value)
        elif key == "BGP.origin":
            draft.origin = value.strip()
        elif key == "BGP.community":
            draft.communities = _bird_communities(value)
        elif key == "BGP.large_community":
            draft.large_communities = _bird_communities(value)
    flush()
    return result


def parse_protocols(text: str) -> dict[str, str]:
    """``show protocols`` -> protocol name -> BGP state ("Established", "Active", ...)."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[1] == "BGP":
            # Name Proto Table State Since Info — for BGP, Info holds the FSM state
            states[cols[0]] = cols[-1] if len(cols) >= 6 else cols[3]
    return states


# --------------------------------------------------------------------------- instance


@dataclass
class BirdInstance(SingleProcessDaemon, BgpDaemon):
    daemon: ClassVar[str] = "BIRD"
    netns: Netns
    directory: Path
    config: BirdConfig
    process: Process = field(repr=False)

    @property
    def socket(self) -> Path:
        return self.directory / "bird.ctl"

    def log_text(self) -> str:
        log = self.directory / "bird.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return self.process.log_text() + text

    def birdc(self, *command: str, timeout: float = 20.0) -> str:
        """Run one birdc command; return its output without the banner."""
        out = run_command(["birdc", "-s", str(self.socket), *command], timeout=timeout).stdout
        lines = out.splitlines()
        if lines and lines[0].startswith("BIRD "):
            lines = lines[1:]
        return "\n".join(lines)

    def protocol_states(self) -> dict[str, str]:
        """BGP protocol name (``n1``...) -> state."""
        return parse_protocols(self.birdc("show", "protocols"))

    def neighbor_states(self) -> dict[str, str]:
        """Neighbor address -> BGP state."""
        states = self.protocol_states()
        return {
            n.address: states.get(protocol_name(i), "") for i, n in enumerate(self.config.neighbors)
        }

    def routes(self, family: Family = "ipv4") -> dict[str, list[BgpPath]]:
        table = "master4" if family == "ipv4" else "master6"
        return parse_routes(self.birdc("show", "route", "all", "table", table))

    def route(self, prefix: str) -> list[BgpPath]:
        return parse_routes(self.birdc("show", "route", "for", prefix, "all")).get(prefix, [])

    def kernel_routes(self, *, v6: bool = False) -> list[Route]:
        return self.netns.routes(v6=v6)


def start_bird(
    netns: Netns,
    config: BirdConfig,
    directory: Path,
    *,
    timeout: float = 30.0,
    text: str | None = None,
) -> BirdInstance:
    """Write the config under ``directory`` and run BIRD in the foreground in ``netns``.

    ``text``: the configuration file to use instead of rendering ``config`` (which then only
    describes the neighbors, e.g. :mod:`vipcast.lab.cni_bird`).
    """
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "bird.conf"
    conf.write_text(text if text is not None else render_bird(config, directory / "bird.log"))
    sock = directory / "bird.ctl"
    argv = ["bird", "-f", "-c", str(conf), "-s", str(sock), "-P", str(directory / "bird.pid")]
    proc = netns.spawn(argv, name="bird", log_path=directory / "bird.out")
    inst = BirdInstance(netns=netns, directory=directory, config=config, process=proc)

    def ready() -> bool:
        if not proc.alive():
            raise ProcessDied(f"bird exited:\n{inst.log_text()[-3000:]}")
        return sock.exists() and bool(inst.birdc("show", "status"))

    try:
        wait_until(ready, timeout=timeout, what="bird control socket", on_timeout=inst.log_text)
    except (LabError, TimeoutError):
        with contextlib.suppress(Exception):
            inst.stop()
        raise
    return inst
