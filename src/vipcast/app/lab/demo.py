"""``vipcast demo``: the lab end to end in about a minute, with a summary and a picture.

Builds the lab (router, nodes running vipcast agents and Envoy, backends, client), shows the
allocations, the router's BGP sessions and ECMP routes, sends client traffic through the VIPs
and shows how it spreads, then cuts a node off (agent killed, its cable pulled) while the client
keeps sending, and reports how long the client's traffic took to recover. Before that
(``app/lab/demo_drain.py``) it shows the router's weighted next hops for a VIP whose nodes run
different numbers of pods, beside the client's measured spread, and drains a node under load
(the failed requests counted: zero expected), then undrains it. Its L7 part
(``app/lab/demo_gateway.py``) shows the Gateway: host and path routing, a weighted split, the client
the backends saw, pods scaled under load. Writes an SVG of requests per node over time (and
per Service version through the Gateway), then tears everything down.
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
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path

from vipcast.app.lab.bars import (
    FAILED,
    FAILED_COLOR,
    Plot,
    bucket_counts,
    colours,
    stacked_bars,
    tallest,
)
from vipcast.app.lab.demo_drain import (
    DrainResult,
    WeightResult,
    drain_node,
    drain_svg,
    measure_weights,
)
from vipcast.app.lab.demo_gateway import L7Result, l7_scenario, l7_svg, stack_svgs
from vipcast.app.lab.topology import (
    LabOptions,
    LabState,
    build,
    node_v4,
    router_of,
    wait_sessions,
)
from vipcast.core.allocation import allocate_spec
from vipcast.lab.netns import Netns, Topology
from vipcast.lab.workload import ClientLoad, Sample, wait_all_started
from vipcast.sources.files import load_paths

Say = Callable[[str], None]

REQUIRED = {
    "ip": "iproute2",
    "nft": "nftables",
}
ROUTER_TOOLS = {
    "frr": {"/usr/lib/frr/bgpd": "frr", "/usr/lib/frr/zebra": "frr", "/usr/lib/frr/bfdd": "frr"},
    "bird": {"bird": "bird2", "birdc": "bird2"},
}


def missing_tools(router: str = "frr") -> list[str]:
    """Debian packages the lab with this router needs that are not installed."""
    out: list[str] = []
    for tool, package in {**REQUIRED, **ROUTER_TOOLS.get(router, {})}.items():
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
    #: the L7 part (the lab's Gateway), when the lab runs Envoy
    l7: L7Result | None = None
    #: weighted ECMP (a lab with ``backends``): the router's weights and the measured spread
    weights: WeightResult | None = None
    #: a drain under client load (then an undrain), before the failover
    drain: DrainResult | None = None


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
    """When the client recovered, and how many requests failed after the kill.

    Recovery is the start of the first successful request after the last failed one,
    counted from the kill (0.0 when nothing failed; None when no request succeeded after the
    last failure). Requests already in flight at the kill count as after it.
    """
    after = [s for s in samples if s.t >= kill_at - 0.3]
    failed = [s for s in after if not s.ok]
    if not after:
        return None, 0
    if not failed:
        return 0.0, 0
    last_fail = max(s.t for s in failed)
    ok_after = [s.t for s in after if s.ok and s.t > last_fail]
    if not ok_after:
        return None, len(failed)
    return max(0.0, min(ok_after) - kill_at), len(failed)


def run_demo(opts: LabOptions, say: Say, picture: Path | None) -> DemoResult:
    """Build, run, tear down. The work directory goes too, unless the run failed (logs)."""
    topo, state = build(opts, step=lambda s: say(f"building the lab: {s}"))
    with topo:
        result = _scenario(topo, state, opts, say, picture)
    shutil.rmtree(opts.workdir, ignore_errors=True)
    return result


def _scenario(topo: Topology, state: LabState, opts: LabOptions, say: Say,
              picture: Path | None) -> DemoResult:
    frr = router_of(topo, state)
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

    weights = (measure_weights(topo, vips["default/web-local"][0], opts.nodes, say,
                               lambda c, url, n: send(c, url, n))
               if opts.backends else None)
    l7 = l7_scenario(topo, state, opts, say) if opts.gateway else None
    # after the L7 part: an undrain completes once every route's service is servable again
    # (the Gateway VIP's while Envoy is ready; docs/drain.md)
    drained = drain_node(topo, state, 1, vips["default/web"][0], say)

    victim = f"n{opts.nodes}"
    say(f"failover: the client keeps sending; {victim} loses power in 3 s")
    web_ip = vips["default/web"][0]
    duration = 8.0 if opts.bfd else 12.0
    # the handshake shows the path (0.25 s); the answer may wait for a busy backend (2 s).
    # Two clients, each one new connection every 40 ms: a request caught answering on the
    # dying node blocks its client for the answer's timeout, while the other one goes on
    # testing the path (the recovery is read from both, by request start)
    loads = [ClientLoad(client, f"http://{web_ip}/", duration=duration, interval=0.04,
                        timeout=0.25, response_timeout=2.0) for _ in range(2)]
    load = loads[0]
    # traffic known to flow (a loaded machine takes seconds to start a client), then 2.5 s of it
    wait_all_started(loads)
    time.sleep(2.5)
    kill_at = power_off(topo, state, victim, load.now)
    route_gone = watch_next_hop_gone(router, f"{web_ip}/32", node_v4(opts.nodes),
                                     since=kill_at, clock=load.now, until=duration)
    samples = sorted((replace(s, t=round(s.t + other.t0 - load.t0, 4))
                      for other in loads for s in other.samples()), key=lambda s: s.t)
    recovery, failed = recovery_time(samples, kill_at)
    result = DemoResult(
        allocations=allocs, sessions=sessions, routes=routes, spread=spread, clients_seen=seen,
        failover_samples=samples, killed_node=victim, kill_at=kill_at, recovery=recovery,
        failed_requests=failed, route_gone=route_gone, l7=l7, weights=weights, drain=drained,
    )
    if picture is not None:
        cause = "BFD 100 ms x 3" if opts.bfd else f"BGP hold timer {opts.hold_time} s"
        cause += ", node liveness (SWIM)" if opts.liveness else ", no node liveness"
        chart = failover_svg(
            samples, kill_at, victim, route_gone=route_gone, recovery=recovery,
            subtitle=f"{opts.nodes} nodes, failure detection: {cause}; two clients, each "
                     "one new connection every 40 ms, timeout 0.25 s")
        charts = [chart, drain_svg(weights, drained)]
        if l7 is not None:
            charts.append(l7_svg(l7))
        picture.write_text(stack_svgs(charts))
        result.picture = picture
        png = write_png(picture)
        if png is not None:
            result.picture = png
    say("tearing down")
    return result


def power_off(topo: Topology, state: LabState, node: str, clock: Callable[[], float]) -> float:
    """A node loses power: its LAN cable is pulled (bridge side), then its agent SIGKILLed.

    The cable goes first: a dead machine sends nothing, while a killed process's kernel still
    closes its TCP sessions with a FIN, which a graceful-restart helper takes for an agent
    restart and keeps the node's routes (stale). Returns ``clock()`` at the failure.
    """
    at = clock()
    topo["lan"].set_link(f"p{node[1:]}", False)  # the router's own link stays up
    for process in ("agent", "cni-bird"):  # and the CNI's BIRD, in a ``--cni bird`` lab
        pid = state.pids.get(f"{node}-{process}")
        if pid:
            os.killpg(pid, signal.SIGKILL)
    return at


def watch_next_hop_gone(router: Netns, prefix: str, hop: str, *, since: float,
                        clock: Callable[[], float], until: float) -> float | None:
    """Poll the router's kernel route (bounded by ``until`` on ``clock``) until ``hop`` leaves.

    Returns seconds from ``since`` to the first poll without the next hop, or None.
    """
    while clock() < until:
        r = router.route(prefix)
        if r is None or hop not in r.gateways:
            return clock() - since
        time.sleep(0.01)
    return None


# ------------------------------------------------------------------ the picture

def _nice_step(peak: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500):
        if peak / step <= 6:
            return step
    return 1000


def failover_svg(samples: list[Sample], kill_at: float, victim: str, *,
                 route_gone: float | None = None, recovery: float | None = None,
                 subtitle: str = "", bucket: float = 0.2) -> str:
    """Stacked bars: the client's requests per ``bucket`` seconds, by the node that served
    them, failed ones in red on top; the failure, the router's reaction and the client's
    recovery are marked on the time axis."""
    if not samples:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    end = max(s.t for s in samples) + bucket
    names = sorted({str(s.node) for s in samples if s.ok})
    colour = colours(names)
    counts = bucket_counts(((s.t, str(s.node) if s.ok else FAILED) for s in samples), colour,
                           bucket, end)
    n_buckets = len(counts[FAILED])
    width, height = 860, 470
    left, right, top, bottom = 70, 190, 104, 62
    plot_w, plot_h = width - left - right, height - top - bottom
    step = _nice_step(tallest(counts))
    peak = step * (-(-tallest(counts) // step))
    plot = Plot(left, top, plot_w, plot_h, n_buckets * bucket, peak)
    x, y = plot.x, plot.y

    per_bucket = f"{bucket * 1000:.0f} ms"
    title = f"Client requests during a node failure: {victim} loses power at {kill_at:.1f} s"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="DejaVu Sans, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<text x="{left}" y="40" fill="#555">{escape(subtitle)}</text>',
    ]
    if recovery is not None:  # the outage as the client saw it
        out.append(f'<rect x="{x(kill_at):.1f}" y="{top}" '
                   f'width="{max(1.0, x(kill_at + recovery) - x(kill_at)):.1f}" '
                   f'height="{plot_h}" fill="{FAILED_COLOR}" fill-opacity="0.12"/>')
    for v in range(0, peak + 1, step):  # grid and y ticks
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    out += stacked_bars(plot, counts, colour, bucket)
    out += [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
    ]
    for tick in range(int(n_buckets * bucket) + 1):
        out.append(f'<text x="{x(tick):.1f}" y="{top + plot_h + 16}" '
                   f'text-anchor="middle">{tick}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 22}" text-anchor="middle">'
               'seconds since the client was launched (it sends once Python is up)</text>')
    out.append(f'<text transform="translate(18,{top + plot_h / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">requests per {per_bucket} (stacked by node)</text>')
    marks = [(kill_at, f"{victim} dies", "#000", 0)]
    if route_gone is not None:
        marks.append((kill_at + route_gone, f"router drops it +{route_gone:.2f} s", "#555", 1))
    if recovery is not None:
        marks.append((kill_at + recovery, f"client recovered +{recovery:.2f} s", "#2a7", 2))
    for t, label, color, row in marks:
        label_y = top - 40 + 15 * row  # one row per mark, above the bars
        out.append(f'<line x1="{x(t):.1f}" y1="{label_y - 10}" x2="{x(t):.1f}" '
                   f'y2="{top + plot_h}" stroke="{color}" stroke-dasharray="5,3"/>')
        out.append(f'<text x="{x(t) + 4:.1f}" y="{label_y}" '
                   f'fill="{color}">{escape(label)}</text>')
    lx = left + plot_w + 16
    out.append(f'<text x="{lx}" y="{top + 4}" font-weight="bold">served by</text>')
    for i, (name, color) in enumerate(colour.items()):
        label = "failed (timeout)" if name == FAILED else f"node {name}"
        ly = top + 24 + 18 * i
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{lx + 18}" y="{ly}">{escape(label)}</text>')
    if recovery is not None:
        ly = top + 24 + 18 * (len(names) + 1)
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" '
                   f'fill="{FAILED_COLOR}" fill-opacity="0.12" stroke="#ccc"/>')
        out.append(f'<text x="{lx + 18}" y="{ly}">outage seen by client</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_png(svg: Path) -> Path | None:
    """Also render ``svg`` as PNG when ``rsvg-convert`` happens to be installed (optional)."""
    tool = shutil.which("rsvg-convert")
    if tool is None or svg.suffix != ".svg":
        return None
    png = svg.with_suffix(".png")
    done = subprocess.run([tool, str(svg), "-o", str(png)], capture_output=True, check=False,
                          timeout=30)
    return png if done.returncode == 0 else None
