"""The demos' charts of a client's requests: counted per time bucket by who answered (a node,
a Service version) and drawn as stacked bars, failed requests red on top (``vipcast demo``:
the failover, the drain and the L7 gateway pictures)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: one colour per node (or version), in the order of the names; failed requests are red
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f")
FAILED = "failed"
FAILED_COLOR = "#e15759"


def colours(names: Sequence[str]) -> dict[str, str]:
    """``names`` (sorted as they should stack, bottom first) with their colours, then
    :data:`FAILED` in red on top."""
    return {**{name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)},
            FAILED: FAILED_COLOR}


def bucket_counts(
    answers: Iterable[tuple[float, str]], keys: Iterable[str], bucket: float, end: float
) -> dict[str, list[int]]:
    """Per key, the requests in each ``bucket`` seconds from 0 to ``end``; ``answers`` are
    (seconds, key) pairs (a key from ``keys``: who answered, or :data:`FAILED`)."""
    n = int(end / bucket) + 1
    counts = {key: [0] * n for key in keys}
    for t, key in answers:
        counts[key][max(0, int(t / bucket))] += 1
    return counts


def tallest(counts: Mapping[str, list[int]]) -> int:
    """The highest stack (at least 1)."""
    n = len(next(iter(counts.values()), []))
    return max(1, max((sum(c[k] for c in counts.values()) for k in range(n)), default=0))


@dataclass(frozen=True)
class Plot:
    """The plot area: ``left``/``top`` corner, ``width`` x ``height`` pixels for ``seconds``
    along x and 0..``peak`` requests along y."""

    left: float
    top: float
    width: float
    height: float
    seconds: float
    peak: float

    def x(self, t: float) -> float:
        return self.left + self.width * t / self.seconds

    def y(self, v: float) -> float:
        return self.top + self.height * (1 - v / self.peak)


def stacked_bars(plot: Plot, counts: Mapping[str, list[int]], colour: Mapping[str, str],
                 bucket: float) -> list[str]:
    """One SVG ``rect`` per non-empty (bucket, key), stacked in the order of ``colour``."""
    n = len(next(iter(counts.values()), []))
    bar_w = max(1.0, plot.width / max(n, 1) - 1)
    out = []
    for k in range(n):
        base = 0
        for key, fill in colour.items():
            c = counts[key][k]
            if not c:
                continue
            out.append(f'<rect x="{plot.x(k * bucket) + 0.5:.1f}" y="{plot.y(base + c):.1f}" '
                       f'width="{bar_w:.1f}" height="{plot.y(base) - plot.y(base + c):.1f}" '
                       f'fill="{fill}"/>')
            base += c
    return out
