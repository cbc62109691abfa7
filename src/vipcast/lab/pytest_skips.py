"""pytest plugin: the skip summary, and no flaky skips under CI.

Enabled suite-wide by ``tests/conftest.py``. At the end of every run the terminal summary counts
the skipped tests grouped by reason ("N  reason"), and says when ``VIPCAST_SKIP_KUBE=1`` left
out the API-tier and chart tests.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest


def skip_reason(report: pytest.TestReport) -> str:
    """The reason a skipped test gave (pytest stores it as ``(path, line, "Skipped: why")``)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ").strip() or "(no reason given)"


def skip_counts(reports: list[pytest.TestReport]) -> Counter[str]:
    return Counter(skip_reason(r) for r in reports if r.skipped)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r, pytest.TestReport)]
    counts = skip_counts(skipped)
    terminalreporter.section("skipped tests by reason")
    if os.environ.get("VIPCAST_SKIP_KUBE") == "1":
        terminalreporter.write_line(
            "VIPCAST_SKIP_KUBE=1: the API server and helm were not required; the API-tier and "
            "chart tests did not run")
    terminalreporter.write_line(f"{sum(counts.values())} skipped")
    for reason, n in counts.most_common():
        terminalreporter.write_line(f"{n:5d}  {reason}")
