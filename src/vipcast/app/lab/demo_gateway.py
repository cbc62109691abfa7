"""``vipcast demo``'s L7 part: the lab's Gateway (``app/lab/gateway.py``) in action.

Host and path routing, the 80/20 weighted split, the client address the backends saw (Envoy's
X-Forwarded-For), then a steady client load while the v1/v2 pods are scaled down to one node
and back up, twice: every request must succeed (endpoint changes reach Envoy as EDS updates,
nothing restarts). Also draws its part of the demo's picture (:func:`l7_svg`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import yaml

from vipcast.app.lab.bars import (
    FAILED,
    FAILED_COLOR,
    PALETTE,
    Plot,
    bucket_counts,
    stacked_bars,
    tallest,
)
from vipcast.app.lab.gateway import (
    GATEWAY_VIP,
    PATH_HOST,
    SPLIT_HOST,
    WEIGHTS,
    pod_objects,
    pod_version,
)
from vipcast.app.lab.topology import LabOptions, LabState, backend_ips
from vipcast.lab.netns import Netns, Topology, wait_until
from vipcast.lab.workload import ClientLoad, Sample, wait_all_started

COLORS = {"v1": PALETTE[0], "v2": PALETTE[1], FAILED: FAILED_COLOR}


@dataclass
class L7Result:
    next_hops: tuple[str, ...]
    #: (Host, path, the Service version that answered)
    routing: list[tuple[str, str, str]]
    split: Counter[str]
    forwarded: Counter[str]
    samples: list[Sample]
    #: (seconds on the load's clock, what changed)
    events: list[tuple[float, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.samples if not s.ok)


def _get(client: Netns, host: str, path: str) -> dict[str, Any]:
    out = client.run(["curl", "-sf", "--max-time", "5", "-H", f"Host: {host}",
                      f"http://{GATEWAY_VIP}{path}"], check=False, timeout=15)
    if out.returncode != 0:
        raise RuntimeError(f"GET {host}{path} through the gateway failed: {out.stderr}")
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def _send(client: Netns, host: str, count: int) -> list[Sample]:
    out = client.run(
        [sys.executable, "-m", "vipcast.lab.workload", "load", "--url",
         f"http://{GATEWAY_VIP}/", "--count", str(count), "--interval", "0.005",
         "--timeout", "1", "--max-seconds", "20", "--host-header", host],
        check=False, timeout=50)
    return [Sample(**json.loads(line)) for line in out.stdout.splitlines() if line.strip()]


def _write_pods(config: Path, nodes: int, on: dict[str, list[int]]) -> None:
    tmp = config.parent / ".gateway-pods.yaml.tmp"  # beside, not in, the watched folder
    tmp.write_text(yaml.safe_dump_all(pod_objects(nodes, backend_ips, on), sort_keys=False))
    os.replace(tmp, config / "gateway-pods.yaml")


def l7_scenario(topo: Topology, state: LabState, opts: LabOptions,
                say: Any) -> L7Result:
    router, client = topo["router"], topo["client"]
    say("L7: waiting for the Gateway's VIP over every node (each node's Envoy serving)")

    def hops() -> tuple[str, ...]:
        r = router.route(f"{GATEWAY_VIP}/32")
        return r.gateways if r else ()

    wait_until(lambda: len(hops()) == opts.nodes or None, timeout=90, interval=0.1,
               what=f"{opts.nodes} next hops for the Gateway VIP {GATEWAY_VIP}")
    say("L7: host and path routing, the weighted split")
    routing = [(host, path, pod_version(_get(client, host, path)["pod"]))
               for host, path in ((PATH_HOST, "/v1/users"), (PATH_HOST, "/v2/users"),
                                  (PATH_HOST, "/"))]
    samples = _send(client, SPLIT_HOST, 100)
    split = Counter(pod_version(str(s.pod)) if s.ok else "failed" for s in samples)
    forwarded = Counter(str(s.forwarded) for s in samples if s.ok)

    say("L7: pods scaled down and up under a steady client load")
    config = Path(state.workdir) / "config"
    every = list(range(1, opts.nodes + 1))
    load = ClientLoad(client, f"http://{GATEWAY_VIP}/", duration=7.0, interval=0.02,
                      timeout=0.5, response_timeout=2.0, host=SPLIT_HOST)
    events: list[tuple[float, str]] = []
    wait_all_started([load])  # traffic known to flow before the first change, then 0.5 s of it
    time.sleep(0.5)
    for _ in range(2):
        _write_pods(config, opts.nodes, {"v1": [1], "v2": [1]})
        events.append((load.now(), "scaled to 1 pod each"))
        time.sleep(1.5)
        _write_pods(config, opts.nodes, {"v1": every, "v2": every})
        events.append((load.now(), f"scaled to {opts.nodes} pods each"))
        time.sleep(1.5)
    return L7Result(hops(), routing, split, forwarded, load.samples(), events)


def l7_svg(result: L7Result, *, bucket: float = 0.2) -> str:
    """Stacked bars: requests through the Gateway per ``bucket`` s by the Service version that
    answered (failed ones red), with the scale events marked."""
    samples = result.samples
    width, height = 860, 400
    left, right, top, bottom = 70, 190, 80, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    end = max((s.t for s in samples), default=1.0) + bucket
    counts = bucket_counts(((s.t, pod_version(str(s.pod)) if s.ok else FAILED)
                            for s in samples), COLORS, bucket, end)
    n = len(counts[FAILED])
    plot = Plot(left, top, plot_w, plot_h, n * bucket, tallest(counts))
    x = plot.x

    title = (f"Through the L7 gateway: {len(samples)} requests, {result.failed} failed, "
             "while pods scale down and up")
    sub = (f"Host {SPLIT_HOST}: v1 {WEIGHTS['v1']} % / v2 {WEIGHTS['v2']} %; Envoy on every "
           f"node, VIP {GATEWAY_VIP} by BGP ECMP; client seen as "
           + ", ".join(sorted(result.forwarded)))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="DejaVu Sans, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<text x="{left}" y="40" fill="#555">{escape(sub)}</text>',
    ]
    out += stacked_bars(plot, counts, COLORS, bucket)
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
               f'y2="{top + plot_h}" stroke="black"/>')
    for tick in range(int(n * bucket) + 1):
        out.append(f'<text x="{x(tick):.1f}" y="{top + plot_h + 16}" '
                   f'text-anchor="middle">{tick}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 12}" text-anchor="middle">'
               f'seconds (requests per {bucket * 1000:.0f} ms, stacked by version)</text>')
    for k, (t, label) in enumerate(result.events):
        ly = top - 22 + 12 * (k % 2)
        out.append(f'<line x1="{x(t):.1f}" y1="{ly}" x2="{x(t):.1f}" y2="{top + plot_h}" '
                   'stroke="#555" stroke-dasharray="5,3"/>')
        out.append(f'<text x="{x(t) + 3:.1f}" y="{ly}" font-size="10">{escape(label)}</text>')
    lx = left + plot_w + 16
    for i, (name, color) in enumerate(COLORS.items()):
        ly = top + 24 + 18 * i
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{lx + 18}" y="{ly}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def stack_svgs(parts: list[str]) -> str:
    """One picture of several SVG charts, one under the other (nested ``<svg>`` elements)."""
    heights, widths = [], []
    for part in parts:
        head = part[: part.index(">")]
        widths.append(int(head.split('width="')[1].split('"')[0]))
        heights.append(int(head.split('height="')[1].split('"')[0]))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(widths)}" '
           f'height="{sum(heights)}">']
    offset = 0
    for part, h in zip(parts, heights, strict=True):
        out.append(part.replace("<svg ", f'<svg y="{offset}" ', 1))
        offset += h
    out.append("</svg>")
    return "\n".join(out)
