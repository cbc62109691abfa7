"""The demos' stacked-bar charts (app/lab/bars.py), shared by the failover, drain and L7
pictures: what is counted where, and how the bars stack. Pure: no lab needed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter

from vipcast.app.lab.bars import (
    FAILED,
    FAILED_COLOR,
    PALETTE,
    Plot,
    bucket_counts,
    colours,
    stacked_bars,
    tallest,
)
from vipcast.app.lab.demo import failover_svg
from vipcast.app.lab.demo_drain import DrainResult, drain_svg
from vipcast.app.lab.demo_gateway import L7Result, l7_svg
from vipcast.lab.workload import Sample

SVG = "{http://www.w3.org/2000/svg}"


def test_requests_are_counted_per_bucket_by_who_answered() -> None:
    answers = [(0.0, "n1"), (0.19, "n2"), (0.2, "n1"), (0.45, FAILED), (-0.01, "n2")]
    counts = bucket_counts(answers, colours(["n1", "n2"]), 0.2, 0.7)
    assert counts == {"n1": [1, 1, 0, 0], "n2": [2, 0, 0, 0], FAILED: [0, 0, 1, 0]}
    assert tallest(counts) == 3
    assert tallest({"n1": [0, 0]}) == 1  # an empty chart still has a scale


def test_colours_follow_the_names_and_failed_is_red_on_top() -> None:
    assert list(colours(["n1", "n2"]).items()) == [
        ("n1", PALETTE[0]), ("n2", PALETTE[1]), (FAILED, FAILED_COLOR)]


def test_bars_stack_bottom_first_and_fill_the_plot_at_the_peak() -> None:
    counts = {"n1": [2, 0], "n2": [1, 0], FAILED: [1, 3]}
    plot = Plot(left=10, top=20, width=100, height=80, seconds=1.0, peak=4)
    rects = [ET.fromstring(r).attrib for r in stacked_bars(plot, counts, colours(["n1", "n2"]),
                                                          0.5)]
    assert [r["fill"] for r in rects] == [PALETTE[0], PALETTE[1], FAILED_COLOR, FAILED_COLOR]
    first = rects[:3]  # bucket 0: n1 at the bottom (largest y), failed on top, 4 = the peak
    assert [float(r["y"]) for r in first] == sorted((float(r["y"]) for r in first),
                                                    reverse=True)
    assert sum(float(r["height"]) for r in first) == 80.0
    assert float(first[-1]["y"]) == 20.0
    assert {r["x"] for r in first} == {"10.5"} and rects[3]["x"] == "60.5"


def _samples() -> list[Sample]:
    out = []
    for k in range(100):
        t = k * 0.05
        ok = not 2.0 <= t < 2.5
        out.append(Sample(t=t, ok=ok, node=f"n{k % 3 + 1}" if ok else None,
                          pod=f"10.244.{k % 3 + 1}.10" if ok else None))
    return out


def test_every_chart_draws_one_bar_per_non_empty_bucket_and_answer() -> None:
    samples = _samples()
    charts = {
        "failover": (failover_svg(samples, 2.0, "n3", route_gone=0.3, recovery=0.5), 0.2),
        "drain": (drain_svg(None, DrainResult("n2", samples, 2.0, 1.0, 10)), 0.5),
        "l7": (l7_svg(L7Result(("a",), [], Counter(), Counter(), samples)), 0.2),
    }
    for name, (svg, bucket) in charts.items():
        root = ET.fromstring(svg)
        fills = Counter(r.get("fill") for r in root.iter(f"{SVG}rect")
                        if r.get("width") != "12" and r.get("fill-opacity") is None
                        and r.get("fill") != "white")
        by_l7 = name == "l7"
        keys = {(int(s.t / bucket), (("v?" if by_l7 else s.node) if s.ok else FAILED))
                for s in samples}
        failed_buckets = {k for k, key in keys if key == FAILED}
        assert fills[FAILED_COLOR] == len(failed_buckets), name
        if not by_l7:  # one bar per (bucket, node) that had answers
            assert sum(n for fill, n in fills.items() if fill != FAILED_COLOR) == len(
                {(k, key) for k, key in keys if key != FAILED}), name
