"""The e2e labs' failure reports: each test's outcome per phase is kept on its item
(``item.report_setup``/``report_call``), so a module's evidence fixture (tests/e2e/
harness_lab.py, :class:`Evidence`) prints the lab's state only when the test failed."""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, None]:
    del call
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)
