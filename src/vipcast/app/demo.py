"""``vipcast demo``: the lab end to end in about a minute, with a summary and a picture.

Builds the lab (router, nodes running vipcast agents, backends, client), shows the
allocations, the router's BGP sessions and ECMP routes, sends client traffic through the VIPs
and shows how it spreads, then cuts a node off (agent killed, its cable pulled) while the client
keeps sending, and reports how long the client's traffic took to recover. Writes an SVG of
requests per node over time, then tears everything down.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vipcast.app.lab import (
    LabOptions,
    LabState,
    build,
    frr_of,
    node_v4,
    wait_sessions,
)
from vipcast.core.allocation import allocate_spec
from vipcast.lab.netns import Netns, Topology
from vipcast.lab.workload import Sample
from vipcast.spec import load_paths

Say = Callable[[str], None]

REQUIRED = {
    "ip": "iproute2",
    "nft": "nftables",
    "/usr/lib/frr/bgpd": "frr",
    "/usr/lib/frr/zebra": "frr",
    "/usr/lib/frr/bfdd": "frr",
}


def missing_tools() -> list[str]:
    """Debian packages the demo needs that are not installed."""
    out = []
    for tool, package in REQUIRED.items():
        found = Path(tool).exists() if tool.startswith("/") else shutil.which(tool)
        if not found and package not in out:
            out.append(package)
    return out


@dataclass(frozen=True)
class Allocation:
    service: str
    ips: tuple[str, ...]
    policy: str
    reason: str


@dataclass
class DemoResult:
    allocations: list[Allocation]
    sessions: dict[str, str]
    routes: dict[str, list[str]]
    spread: dict[str, Counter[str]]
    clients_seen: dict[str, Counter[str]]
    failover_samples: list[Sample]
    killed_node: str
    kill_at: float
    recovery: float | None
    failed_requests: int
    picture: Path | None = None
    #: seconds from the failure until the router's kernel route lost the node's next hop
    route_gone: float | None = None


def load_samples(text: str) -> list[Sample]:
    return [Sample(**json.loads(line)) for line in text.splitlines() if line.strip()]


def send(client: Netns, url: str, count: int, interval: float = 0.005,
         timeout: float = 1.0, max_seconds: float = 30.0) -> list[Sample]:
    proc = client.run(
        [sys.executable, "-m", "vipcast.lab.workload", "load", "--url", url, "--count",
         str(count), "--interval", str(interval), "--timeout", str(timeout),
         "--max-seconds", str(max_seconds)],
        check=False, timeout=max_seconds + 30,
    )
    return load_samples(proc.stdout)


def allocations(config: Path) -> list[Allocation]:
    spec = load_paths([config])
    result = allocate_spec(spec)
    out = []
    for svc in spec.services:
        a = result.assignments.get(svc.key)
        out.append(Allocation(svc.key, a.ips if a else (), svc.spec.external_traffic_policy,
                              str(a.reason) if a else "-"))
    return out


def recovery_time(samples: list[Sample], kill_at: float) -> tuple[float | None, int]:
    """Seconds from the kill to the last failed request, and how many failed after the kill."""
    after = [s for s in samples if s.t >= kill_at]
    failed = [s for s in after if not s.ok]
    if not after:
        return None, 0
    if not failed:
        return 0.0, 0
    last_fail = max(s.t for s in failed)
    if not any(s.ok and s.t > last_fail for s in after):
        return None, len(failed)
    return last_fail - kill_at, len(failed)


def run_demo(opts: LabOptions, say: Say, picture: Path | None) -> DemoResult:
    topo, state = build(opts, step=lambda s: say(f"building the lab: {s}"))
    with topo:
        return _scenario(topo, state, opts, say, picture)


def _scenario(topo: Topology, state: LabState, opts: LabOptions, say: Say,
              picture: Path | None) -> DemoResult:
    frr = frr_of(topo, state)
    say("waiting for the router's BGP sessions to the nodes")
    wait_sessions(frr, opts.nodes, timeout=60)
    allocs = allocations(Path(state.workdir) / "config")
    by_name = {a.service: a for a in allocs}
    vips = {name: by_name[name].ips for name in ("default/web", "default/web-local",
                                                  "default/dual")}
    say("waiting for the router's ECMP routes to the VIPs")
    router = topo["router"]
    deadline = time.monotonic() + 30
    routes: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        routes = {}
        for ips in vips.values():
            for ip in ips:
                r = router.route(ip + ("/128" if ":" in ip else "/32"))
                routes[ip] = list(r.gateways) if r else []
        web_ip = vips["default/web"][0]
        if len(routes.get(web_ip, [])) == opts.nodes and all(routes.values()):
            break
        time.sleep(0.2)
    sessions = frr.neighbor_states()

    say("sending client traffic through the VIPs")
    client = topo["client"]
    spread: dict[str, Counter[str]] = {}
    seen: dict[str, Counter[str]] = {}
    for name, ips in vips.items():
        for ip in ips:
            host = f"[{ip}]" if ":" in ip else ip
            samples = send(client, f"http://{host}/", 90)
            label = f"{name} {ip}"
            spread[label] = Counter(f"{s.node}/{s.backend}" if s.ok else "failed"
                                    for s in samples)
            seen[label] = Counter(str(s.client) for s in samples if s.ok)

    victim = f"n{opts.nodes}"
    say(f"failover: the client keeps sending; {victim} loses power in 3 s")
    web_ip = vips["default/web"][0]
    duration = 12.0
    load = subprocess.Popen(
        client.exec_argv([sys.executable, "-m", "vipcast.lab.workload", "load", "--url",
                          f"http://{web_ip}/", "--count", str(int(duration / 0.02)),
                          "--interval", "0.02", "--timeout", "0.25",
                          "--max-seconds", str(duration)]),
        stdout=subprocess.PIPE, text=True,
    )
    started = time.monotonic()
    time.sleep(3.0)
    kill_at = time.monotonic() - started
    pid = state.pids.get(f"{victim}-agent")
    if pid:
        os.killpg(pid, signal.SIGKILL)
    topo["lan"].set_link(f"p{opts.nodes}", False)  # the cable: the router's own link stays up
    victim_hop = node_v4(opts.nodes)
    route_gone: float | None = None
    while time.monotonic() - started < duration:
        r = router.route(f"{web_ip}/32")
        if r is not None and victim_hop not in r.gateways:
            route_gone = time.monotonic() - started - kill_at
            break
        time.sleep(0.02)
    out, _ = load.communicate(timeout=duration + 30)
    samples = load_samples(out)
    recovery, failed = recovery_time(samples, kill_at)
    result = DemoResult(
        allocations=allocs, sessions=sessions, routes=routes, spread=spread, clients_seen=seen,
        failover_samples=samples, killed_node=victim, kill_at=kill_at, recovery=recovery,
        failed_requests=failed, route_gone=route_gone,
    )
    if picture is not None:
        picture.write_text(failover_svg(samples, kill_at, victim))
        result.picture = picture
    say("tearing down")
    return result


# ------------------------------------------------------------------ the picture

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def failover_svg(samples: list[Sample], kill_at: float, victim: str,
                 bucket: float = 0.25) -> str:
    """Requests per node (and failures) per ``bucket`` seconds, as an SVG line chart."""
    if not samples:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    end = max(s.t for s in samples)
    n_buckets = int(end / bucket) + 1
    series: dict[str, list[int]] = {}
    for s in samples:
        key = str(s.node) if s.ok else "failed"
        series.setdefault(key, [0] * n_buckets)[int(s.t / bucket)] += 1
    width, height, left, bottom, top = 760, 360, 50, 40, 30
    plot_w, plot_h = width - left - 140, height - bottom - top
    peak = max(max(v) for v in series.values()) or 1

    def x(t: float) -> float:
        return left + plot_w * t / max(end, bucket)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">vipcast demo: requests per node every '
        f'{bucket:g} s ({victim} loses power at {kill_at:.1f} s)</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
        f'<line x1="{x(kill_at):.1f}" y1="{top}" x2="{x(kill_at):.1f}" y2="{top + plot_h}" '
        'stroke="red" stroke-dasharray="4,3"/>',
        f'<text x="{x(kill_at) + 4:.1f}" y="{top + 12}" fill="red">{victim} down</text>',
    ]
    for tick in range(int(end) + 1):
        parts.append(f'<text x="{x(tick):.1f}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle">{tick}s</text>')
    for v in (0, peak):
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for i, (name, counts) in enumerate(sorted(series.items())):
        color = "#d62728" if name == "failed" else COLORS[i % len(COLORS)]
        points = " ".join(f"{x((k + 0.5) * bucket):.1f},{y(c):.1f}"
                          for k, c in enumerate(counts))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{points}"/>')
        ly = top + 16 * i + 10
        parts.append(f'<rect x="{left + plot_w + 12}" y="{ly - 9}" width="12" height="10" '
                     f'fill="{color}"/>')
        parts.append(f'<text x="{left + plot_w + 30}" y="{ly}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
