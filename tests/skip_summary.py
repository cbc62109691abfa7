"""pytest plugin: the skip summary, and no flaky skips under CI.

Enabled suite-wide by ``tests/conftest.py`` (test support, so it lives in tests/, not in the
product package). At the end of every run the terminal summary counts the skipped tests grouped
by reason ("N  reason"), and says when ``VIPCAST_SKIP_KUBE=1`` left out the API-tier and chart
tests. A skip is acceptable only with a stated reason that is not flakiness: under CI (``CI``
set) a skip whose reason calls the test flaky or intermittent makes the run fail.
"""

from __future__ import annotations

import os
import re
from collections import Counter

import pytest

_FLAKY = re.compile(r"flak|intermittent", re.IGNORECASE)


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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    flaky = [skip_reason(r) for r in reporter.stats.get("skipped", [])
             if isinstance(r, pytest.TestReport) and _FLAKY.search(skip_reason(r))]
    if flaky and exitstatus == 0:
        reporter.write_line(f"CI: {len(flaky)} test(s) skipped as flaky; a flaky test is a defect: "
                            + "; ".join(sorted(set(flaky))), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
