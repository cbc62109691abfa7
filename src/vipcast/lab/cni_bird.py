"""BIRD 2 playing a BGP-speaking CNI on a lab node, configured the way calico-node does.

calico-node renders its BIRD configuration from confd templates (``bird.cfg``,
``bird_aggr.cfg``, ``bird_ipam.cfg``; BIRD 1.6 syntax, one ``bird`` and one ``bird6``
process). :func:`render_cni_bird` writes the same policy for one BIRD 2 process:

- a static protocol with a blackhole route for each IPAM block this node owns;
- ``calico_aggr()``: export the block itself, reject anything more specific inside it;
- ``calico_export_to_bgp_peers``: after ``calico_aggr()``, accept what lies inside the IP pools,
  reject everything else (so routes the CNI does not own never leave the node);
- ``calico_kernel_programming`` as the kernel protocol's export filter (``learn``, ``persist``,
  ``scan time 2``, ``graceful restart``, ``merge paths on``), ``protocol direct`` on every
  interface but ``cali*``/``kube-ipvs*``, ``protocol device``;
- one BGP session per router address (calico's "global peer" ``Global_<ip>``), from the
  template's options: ``gateway recursive``, ``add paths``, ``graceful restart``, ``connect
  delay 1``, ``connect retry 3`` (``gateway recursive`` and
  ``add paths`` sit in each channel in BIRD 2).

Where the lab differs from calico-node, on purpose: the router sessions are ``direct``
(single hop) with ``bfd on`` at the lab's 100 ms x 3, where calico's template says
``multihop`` and, only with a ``restartTime``, ``bfd graceful`` on calico's multihop BFD (500 ms
x 16) — a directly connected router's single-hop BFD never meets a multihop one. BIRD 2 has no
``krt_tunnel`` (no IPIP here). ``coexist="daemon"`` includes the shipped snippet
(``deploy/cni/bird/vipcast.conf``) with this node's ``define``s and places the two calls it
asks for in the export filters (coexistence mode 2, docs/cni.md); ``coexist="handoff"`` does the
same with ``deploy/cni/bird/vipcast-handoff.conf`` and the file the agent writes (mode 3).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import vipcast
from vipcast.lab.bgpconf import Family, Neighbor, family_of
from vipcast.lab.bird import BirdConfig, BirdInstance, start_bird
from vipcast.lab.netns import LabError, Netns
from vipcast.lab.process import run_command, wait_until

#: the snippet vipcast ships for a Calico-style BIRD (mode 2), read from the source tree
SNIPPETS = Path(vipcast.__file__).resolve().parents[2] / "deploy/cni/bird"
VIPCAST_SNIPPET = SNIPPETS / "vipcast.conf"
#: the snippet for the hand-off (mode 3): export/kernel functions for the agent's static routes
HANDOFF_SNIPPET = SNIPPETS / "vipcast-handoff.conf"
#: the BGP protocols the snippet defines (names the snippet's functions test against)
VIPCAST_PROTOCOLS = {"ipv4": "vipcast4", "ipv6": "vipcast6"}


@dataclass(frozen=True)
class CniBirdConfig:
    """One node's CNI BIRD: its identity, its blocks and pools, its router sessions."""

    asn: int
    router_id: str
    #: the node's addresses (sources of the router sessions, vipcast's peer addresses)
    node_v4: str
    node_v6: str
    #: IPAM blocks this node owns (exported as blocks) and the IP pools they come from
    blocks: tuple[str, ...]
    pools: tuple[str, ...]
    routers: tuple[Neighbor, ...]
    bfd_interval_ms: int = 100
    bfd_multiplier: int = 3
    #: how vipcast lives beside this BIRD: "none" (it does not), "daemon" (mode 2: vipcast's
    #: snippet, BIRD listens on ``vipcast_port``), "handoff" (mode 3: the agent writes
    #: ``handoff_path``, included with the hand-off snippet)
    coexist: Literal["none", "daemon", "handoff"] = "none"
    vip_pools: tuple[str, ...] = ()
    vipcast_port: int = 1790
    handoff_path: str = ""

    @property
    def vipcast(self) -> bool:
        """Mode 2: vipcast peers this BIRD."""
        return self.coexist == "daemon"


def global_peer_name(address: str) -> str:
    """calico's protocol name for a global BGP peer: ``Global_198_18_0_1``."""
    return "Global_" + address.replace(".", "_").replace(":", "_")


def _host_len(prefix: str) -> int:
    return 32 if family_of(prefix) == "ipv4" else 128


def vipcast_defines(cfg: CniBirdConfig) -> str:
    """The ``define`` lines the snippet asks for, for this node (the hand-off's: pools only)."""
    sets = {}
    for fam, name in (("ipv4", "VIPCAST_POOLS4"), ("ipv6", "VIPCAST_POOLS6")):
        items = [f"{p}{{{_host_len(p)},{_host_len(p)}}}" for p in cfg.vip_pools
                 if family_of(p) == fam]
        # BIRD has no empty prefix set literal: a pool-less family matches nothing real
        sets[name] = ", ".join(items) or ("0.0.0.0/32{32,32}" if fam == "ipv4" else "::/128")
    pools = [f"define VIPCAST_POOLS4 = [ {sets['VIPCAST_POOLS4']} ];",
             f"define VIPCAST_POOLS6 = [ {sets['VIPCAST_POOLS6']} ];"]
    if cfg.coexist == "handoff":
        return "\n".join(pools)
    return "\n".join([
        f"define VIPCAST_AS = {cfg.asn};",
        f"define VIPCAST_PORT = {cfg.vipcast_port};",
        f"define VIPCAST_NODE4 = {cfg.node_v4};",
        f"define VIPCAST_NODE6 = {cfg.node_v6};",
        *pools,
    ])


def _by_family(prefixes: tuple[str, ...], fam: Family) -> list[str]:
    return [p for p in prefixes if family_of(p) == fam]


def render_cni_bird(cfg: CniBirdConfig, log_path: Path) -> str:
    """The node's BIRD 2 configuration (calico-node's policy; vipcast's snippet included)."""
    out = [f'log "{log_path}" all;', f"router id {cfg.router_id};", ""]
    hook = no_kernel = ""
    if cfg.coexist != "none":
        snippet = VIPCAST_SNIPPET if cfg.coexist == "daemon" else HANDOFF_SNIPPET
        if not snippet.is_file():
            raise LabError(f"{snippet}: vipcast's BIRD snippet is missing (run from the source "
                           "tree)")
        out += [f"# vipcast ({cfg.coexist}): the snippet's parameters for this node",
                vipcast_defines(cfg)]
        if cfg.coexist == "handoff":
            out.append(f'include "{cfg.handoff_path}";   # written by the vipcast agent')
        out += [f'include "{snippet}";', ""]
        prefix = "vipcast" if cfg.coexist == "daemon" else "vipcast_handoff"
        hook = f"  {prefix}_export();\n"
        no_kernel = f"  {prefix}_no_kernel();\n"
    families: tuple[tuple[Family, str], ...] = (("ipv4", "4"), ("ipv6", "6"))
    for fam, suffix in families:
        blocks = _by_family(cfg.blocks, fam)
        routes = "".join(f"  route {b} blackhole;\n" for b in blocks)
        aggr = "".join(
            f"  if ( net = {b} ) then {{ accept; }}\n  if ( net ~ {b} ) then {{ reject; }}\n"
            for b in blocks
        )
        pools = "".join(
            f"  if ( net ~ {p} ) then {{ accept; }}\n" for p in _by_family(cfg.pools, fam)
        )
        out += [
            "# IP blocks for this host",
            f"protocol static calico_blocks{suffix} {{\n  {fam};\n{routes}}}",
            "# aggregation of routes on this host: export the block, nothing beneath it",
            f"function calico_aggr{suffix}()\n{{\n{aggr}}}",
            f"filter calico_export_to_bgp_peers{suffix}\n{{\n{hook}  calico_aggr{suffix}();\n"
            f"{pools}  reject;\n}}",
            f"filter calico_kernel_programming{suffix}\n{{\n{no_kernel}  accept;\n}}",
            f"protocol kernel kernel{suffix} {{\n"
            "  learn;\n  persist;\n  scan time 2;\n  graceful restart;\n  merge paths on;\n"
            f"  {fam} {{ import all; export filter calico_kernel_programming{suffix}; }};\n}}",
            "",
        ]
    out += [
        "protocol device { scan time 2; }",
        'protocol direct {\n  ipv4;\n  ipv6;\n  interface -"cali*", -"kube-ipvs*", "*";\n}',
    ]
    if any(r.bfd for r in cfg.routers):
        out.append(
            "protocol bfd {\n"
            f'  interface "*" {{ interval {cfg.bfd_interval_ms} ms; '
            f"multiplier {cfg.bfd_multiplier}; }};\n}}"
        )
    out += [
        "template bgp bgp_template {",
        '  description "Connection to BGP peer";',
        f"  local as {cfg.asn};",
        "  graceful restart;",
        "  connect delay time 1;",
        "  connect retry time 3;",
        "  error wait time 1, 10;",  # calico: 5, 60; the lab's pace (see lab/bird.py)
        "}",
    ]
    for r in cfg.routers:
        fam = r.active_families[0]
        suffix = "4" if fam == "ipv4" else "6"
        source = cfg.node_v4 if fam == "ipv4" else cfg.node_v6
        body = [
            f"  neighbor {r.address} as {r.remote_as};",
            f"  source address {source};",
            "  direct;",
        ]
        if r.bfd:
            body.append("  bfd on;")
        if r.hold_time is not None:
            body.append(f"  hold time {r.hold_time};")
        if r.keepalive is not None:
            body.append(f"  keepalive time {r.keepalive};")
        # calico's template has ``gateway recursive`` and ``add paths on`` (channel options
        # in BIRD 2)
        body.append(f"  {fam} {{ gateway recursive; add paths on; import all; "
                    f"export filter calico_export_to_bgp_peers{suffix}; }};")
        out.append(f"protocol bgp {global_peer_name(r.address)} from bgp_template {{\n"
                   + "\n".join(body) + "\n}")
    out.append("")
    return "\n".join(out)


@dataclass
class CniBird(BirdInstance):
    """The node's CNI BIRD: neighbor states by address (routers) and vipcast's sessions."""

    cni: CniBirdConfig | None = None

    def neighbor_states(self) -> dict[str, str]:
        """Router address -> state of the node's session to it."""
        assert self.cni is not None
        states = self.protocol_states()
        return {r.address: states.get(global_peer_name(r.address), "") for r in self.cni.routers}

    def router_session_changes(self) -> dict[str, tuple[str, float]]:
        """Router session (``Global_...``) -> (BIRD's state, when it last changed, in seconds
        of the day); see :meth:`session_changes`."""
        return {k: v for k, v in self.session_changes().items() if k.startswith("Global_")}

    def session_changes(self) -> dict[str, tuple[str, float]]:
        """Every BGP session of this BIRD (the router's ``Global_...``, vipcast's
        ``vipcast4``/``vipcast6``) -> (BIRD's state, when it last changed, in seconds
        of the day). BIRD prints that monotonic instant in wall-clock time converted on every
        call, so one instant can print a millisecond apart: compare with :func:`same_changes`.
        """
        changes = {}
        for line in self.birdc("show", "protocols").splitlines():
            cols = line.split()
            if len(cols) >= 5 and cols[1] == "BGP" and cols[4].count(":") == 2:
                h, m, sec = cols[4].split(":")
                changes[cols[0]] = (cols[3], int(h) * 3600 + int(m) * 60 + float(sec))
        return changes

    def vipcast_states(self) -> dict[str, str]:
        """``vipcast4``/``vipcast6`` -> state of the session with the node's vipcast agent."""
        states = self.protocol_states()
        return {name: states.get(name, "") for name in VIPCAST_PROTOCOLS.values()}


def same_changes(a: dict[str, tuple[str, float]], b: dict[str, tuple[str, float]]) -> bool:
    """No session changed state between two :meth:`CniBird.router_session_changes` readings:
    same states, same instants within 50 ms (a session that went down and came back takes at
    least BIRD's error wait and connect delay, a second each in the lab)."""
    return a.keys() == b.keys() and all(
        a[k][0] == b[k][0] and abs(a[k][1] - b[k][1]) < 0.05 for k in a)


def start_cni_bird(netns: Netns, cfg: CniBirdConfig, directory: Path) -> CniBird:
    """Write the node's configuration (checked with ``bird -p`` first) and run BIRD in ``netns``."""
    directory.mkdir(parents=True, exist_ok=True)
    text = render_cni_bird(cfg, directory / "bird.log")
    conf = directory / "bird.conf"
    conf.write_text(text)
    run_command(["bird", "-p", "-c", str(conf)])
    plain = BirdConfig(asn=cfg.asn, router_id=cfg.router_id, neighbors=cfg.routers)
    inst = start_bird(netns, plain, directory, text=text)
    return CniBird(netns=inst.netns, directory=inst.directory, config=plain,
                   process=inst.process, cni=cfg)


def block_of(address: str, length: int) -> str:
    """The block of ``length`` holding ``address`` (``10.244.1.10``, 24 -> ``10.244.1.0/24``)."""
    return str(ipaddress.ip_network(f"{address}/{length}", strict=False))


def wait_vipcast_sessions(bird: CniBird, timeout: float = 60.0) -> None:
    """Wait until the node's vipcast agent has both sessions with this BIRD Established."""
    wait_until(
        lambda: all(s == "Established" for s in bird.vipcast_states().values()),
        timeout=timeout,
        what=f"BIRD in {bird.netns.short}: vipcast sessions Established",
        on_timeout=lambda: f"{bird.vipcast_states()}\n{bird.log_text()[-3000:]}",
    )

