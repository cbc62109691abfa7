"""``vipcast.obs.phases.PhaseTimer``: one JSON line with the phases in the order they were
marked, each with its figures; nothing at all when not enabled. (That ``vipcast plan --json``
writes the same stdout with and without ``VIPCAST_PHASE_TIMES=1`` is
tests/foundation/test_cli_config.py's.)"""

from __future__ import annotations

import gc
import io
import json

from vipcast.obs.phases import BEFORE, PHASES_ENV, PhaseTimer

PHASE_KEYS = {"s", "cpu_s", "minor_faults", "voluntary_switches", "involuntary_switches"}


def test_report_is_one_json_line_with_the_phases_in_order() -> None:
    err = io.StringIO()
    timer = PhaseTimer.from_env({PHASES_ENV: "1"}, err)
    assert timer.enabled
    sum(range(200_000))  # some CPU in the first phase
    timer.mark("read")
    timer.mark("plan")
    gc.collect()
    timer.report(write_s=0.25)
    lines = err.getvalue().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert list(report) == ["phases", "max_rss_kib", "gc_collections", "write_s"]
    assert list(report["phases"]) == [BEFORE, "read", "plan"]
    assert set(report["phases"][BEFORE]) == {"cpu_s"} and report["phases"][BEFORE]["cpu_s"] > 0
    for label in ("read", "plan"):
        phase = report["phases"][label]
        assert set(phase) == PHASE_KEYS, label
        assert all(v >= 0 for v in phase.values()), label
    assert report["max_rss_kib"] > 0 and report["write_s"] == 0.25
    assert report["gc_collections"] >= 1  # the collection made between the timer and report


def test_not_enabled_measures_and_prints_nothing() -> None:
    for environ in ({}, {PHASES_ENV: ""}, {PHASES_ENV: "0"}):
        err = io.StringIO()
        timer = PhaseTimer.from_env(environ, err)
        timer.mark("read")
        timer.report(write_s=1.0)
        assert not timer.enabled and timer.figures == {} and err.getvalue() == ""
