"""The demo's weighted ECMP and drain part (docs/weighted-ecmp.md, docs/drain.md).

* Weights: the lab runs a different number of ``web-local`` pods per node (``--backends``),
  the agents attach the link bandwidth community, and the router's kernel route carries one
  weight per next hop; the client's requests to that VIP are counted per node beside them
  (the measured spread against the share the weights ask for).
* Drain: ``vipcast drain`` on one node while a client keeps opening connections to the
  ``web`` VIP: the node's agent announces with GRACEFUL_SHUTDOWN, the router moves new
  connections away, the agent withdraws once its NEW-connection counter is quiet; the
  client's failed requests are counted (zero expected) and drawn per node over time. The node
  is undrained before the failover part.
"""

from __future__ import annotations

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
    PALETTE,
    Plot,
    bucket_counts,
    colours,
    stacked_bars,
    tallest,
)
from vipcast.app.lab.topology import LabState, node_v4
from vipcast.lab.netns import Netns, Topology
from vipcast.lab.workload import ClientLoad, Sample, wait_all_started

Say = Callable[[str], None]


@dataclass
class WeightResult:
    vip: str
    #: node address -> the router's next-hop weight
    weights: dict[str, int]
    #: node address -> requests it served (of the client's)
    served: dict[str, int]
    failed: int


@dataclass
class DrainResult:
    node: str
    samples: list[Sample]
    drain_at: float
    #: seconds from the drain until the router's route lost the node's next hop
    withdrawn: float | None
    failed: int
    #: seconds from the undrain until the router's route had the node's next hop again
    back: float | None = None


def measure_weights(topo: Topology, vip: str, nodes: int, say: Say,
                    send: Callable[[Netns, str, int], list[Sample]]) -> WeightResult:
    """The router's weights for ``vip`` once every node with pods announces it, and how the
    client's connections spread over the nodes."""
    router = topo["router"]
    say("weighted ECMP: waiting for the router's weighted next hops")
    deadline = time.monotonic() + 30
    weights: dict[str, int] = {}
    while time.monotonic() < deadline:
        r = router.route(f"{vip}/32")
        weights = {h.gateway: h.weight for h in (r.nexthops if r else ()) if h.gateway}
        if len(weights) > 1 and len(set(weights.values())) > 1:
            break
        time.sleep(0.2)
    say("weighted ECMP: counting the client's requests per node")
    samples = send(topo["client"], f"http://{vip}/", 150)
    by_node = {node_v4(i): f"n{i}" for i in range(1, nodes + 1)}
    names = Counter(str(s.node) for s in samples if s.ok)
    served = {hop: names.get(by_node.get(hop, ""), 0) for hop in weights}
    return WeightResult(vip, weights, served, sum(1 for s in samples if not s.ok))


def drain_node(topo: Topology, state: LabState, node: int, vip: str, say: Say) -> DrainResult:
    """Drain node ``node`` under client load on ``vip``, then undrain it."""
    router = topo["router"]
    config = str(Path(state.workdir) / "config")
    hop = node_v4(node)
    name = f"n{node}"
    say(f"drain: {name} leaves while the client keeps sending")
    # the clients run until the withdrawal and TAIL seconds after it (on an idle machine the
    # withdrawal comes ~9.5 s after the drain: the CLI, the agent's poll, the counter's quiet
    # period of 5 s), at most WATCH seconds after the drain; a fixed 12 s window missed it on
    # a loaded machine
    watch, tail = 60.0, 2.0
    loads = [ClientLoad(topo["client"], f"http://{vip}/", duration=2.0 + watch + tail + 5.0,
                        interval=0.04, timeout=1.0, response_timeout=2.0) for _ in range(2)]
    load = loads[0]
    wait_all_started(loads)  # traffic known to flow before the drain, then 1.5 s of it
    time.sleep(1.5)
    drain_at = load.now()
    _vipcast("drain", name, "--config", config)
    withdrawn: float | None = None
    while load.now() < drain_at + watch:
        r = router.route(f"{vip}/32")
        if r is None or hop not in r.gateways:
            withdrawn = load.now() - drain_at
            break
        time.sleep(0.05)
    time.sleep(tail)  # the clients keep going on the other nodes
    for each in loads:
        each.stop()
    samples = sorted((replace(s, t=round(s.t + other.t0 - load.t0, 4))
                      for other in loads for s in other.samples()), key=lambda s: s.t)
    say(f"drain: {name} comes back")
    _vipcast("undrain", name, "--config", config)
    undrain_at = time.monotonic()
    back: float | None = None
    while time.monotonic() < undrain_at + 20:
        r = router.route(f"{vip}/32")
        if r is not None and hop in r.gateways:
            back = time.monotonic() - undrain_at
            break
        time.sleep(0.2)
    return DrainResult(name, samples, drain_at, withdrawn, sum(1 for s in samples if not s.ok),
                       back)


def _vipcast(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "vipcast.cli.main", *args], check=True,
                   capture_output=True, timeout=60)


# ------------------------------------------------------------------ the picture

def drain_svg(w: WeightResult | None, d: DrainResult, bucket: float = 0.5) -> str:
    """Left: weight share vs measured share per node. Right: the client's requests per
    ``bucket`` by node during the drain, failed ones in red, drain and withdrawal marked."""
    width, height = 860, 350
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           'font-family="DejaVu Sans, sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    if w is not None:
        total_w = sum(w.weights.values()) or 1
        total_s = sum(w.served.values()) or 1
        out.append(f'<text x="20" y="22" font-size="15" font-weight="bold">'
                   f'Weighted ECMP to {escape(w.vip)}</text>')
        out.append('<text x="20" y="40" fill="#555">router weight share (light) vs '
                   'requests served (dark)</text>')
        for i, hop in enumerate(sorted(w.weights)):
            y0 = 64 + i * 52
            ws, ss = w.weights[hop] / total_w, w.served[hop] / total_s
            color = PALETTE[i % len(PALETTE)]
            out.append(f'<text x="20" y="{y0 + 12}">{escape(hop)} weight {w.weights[hop]}'
                       f'</text>')
            out.append(f'<rect x="20" y="{y0 + 18}" width="{260 * ws:.1f}" height="10" '
                       f'fill="{color}" fill-opacity="0.4"/>')
            out.append(f'<rect x="20" y="{y0 + 30}" width="{260 * ss:.1f}" height="10" '
                       f'fill="{color}"/>')
            out.append(f'<text x="{26 + 260 * max(ws, ss):.1f}" y="{y0 + 38}" fill="#333">'
                       f'{ws:.0%} / {ss:.0%}</text>')
    left, top, plot_w, plot_h = 400, 64, 430, 210
    out.append(f'<text x="{left}" y="22" font-size="15" font-weight="bold">'
               f'Drain of {escape(d.node)}: {d.failed} failed of {len(d.samples)}</text>')
    out.append(f'<text x="{left}" y="40" fill="#555">requests per {bucket:g} s by pod\'s '
               'node; GRACEFUL_SHUTDOWN, withdrawal</text>')
    if d.samples:
        end = max(s.t for s in d.samples) + bucket
        names = sorted({str(s.node) for s in d.samples if s.ok})
        colour = colours(names)
        counts = bucket_counts(((s.t, str(s.node) if s.ok else FAILED) for s in d.samples),
                               colour, bucket, end)
        plot = Plot(left, top, plot_w, plot_h, len(counts[FAILED]) * bucket, tallest(counts))
        x = plot.x
        out += stacked_bars(plot, counts, colour, bucket)
        marks = [(d.drain_at, f"vipcast drain {d.node}")]
        if d.withdrawn is not None:
            marks.append((d.drain_at + d.withdrawn, f"withdrawn +{d.withdrawn:.1f} s"))
        for row, (t, label) in enumerate(marks):
            out.append(f'<line x1="{x(t):.1f}" y1="{top - 6 + 14 * row}" x2="{x(t):.1f}" '
                       f'y2="{top + plot_h}" stroke="#000" stroke-dasharray="5,3"/>')
            out.append(f'<text x="{x(t) + 4:.1f}" y="{top + 6 + 14 * row}">'
                       f'{escape(label)}</text>')
        out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
                   f'y2="{top + plot_h}" stroke="black"/>')
        for i, key in enumerate(names):
            out.append(f'<rect x="{left + 90 * i}" y="{top + plot_h + 18}" width="12" '
                       f'height="12" fill="{colour[key]}"/>')
            out.append(f'<text x="{left + 90 * i + 16}" y="{top + plot_h + 28}">node '
                       f'{escape(key)}</text>')
        out.append(f'<text x="{left}" y="{top + plot_h + 48}" fill="#555">seconds: 0 - '
                   f'{end:.0f}; {escape(d.node)} takes no new traffic, its pods answer on</text>')
        out.append(f'<text x="{left}" y="{top + plot_h + 64}" fill="#555">through the other '
                   'nodes (Cluster policy)</text>')
    out.append("</svg>")
    return "\n".join(out)
