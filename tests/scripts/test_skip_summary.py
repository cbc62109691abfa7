"""The skip summary plugin (tests/skip_summary.py) on a small inner test run."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INNER = """
import pytest

@pytest.mark.parametrize("n", range(3))
def test_no_tool(n):
    pytest.skip("needs the frobnicator")

def test_other():
    pytest.skip("not on this kernel")

def test_flaky():
    pytest.skip("flaky under load")

def test_ok():
    pass
"""


def test_skips_are_counted_by_reason(pytester: pytest.Pytester,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("VIPCAST_SKIP_KUBE", raising=False)
    pytester.makepyfile(INNER)
    result = pytester.runpytest("-p", "skip_summary")
    result.assert_outcomes(passed=1, skipped=5)
    result.stdout.fnmatch_lines(["*skipped tests by reason*", "5 skipped",
                                 "    3  needs the frobnicator"])
    result.stdout.fnmatch_lines(["    1  not on this kernel"])
    assert result.ret == pytest.ExitCode.OK


def test_kube_skip_is_named(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("VIPCAST_SKIP_KUBE", "1")
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("-p", "skip_summary")
    result.stdout.fnmatch_lines(["VIPCAST_SKIP_KUBE=1: *did not run", "0 skipped"])


def test_flaky_skip_fails_under_ci(pytester: pytest.Pytester,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(INNER)
    result = pytester.runpytest("-p", "skip_summary")
    result.assert_outcomes(passed=1, skipped=5)
    result.stdout.fnmatch_lines(["CI: 1 test(s) skipped as flaky*flaky under load"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
