"""The HAProxy appliance driver when its own host fails it: a state directory that cannot be
made, no haproxy binary, a state file edited by hand -- each a REFUSED value naming the path
(or the binary), never an exception out of the driver, and nothing overwritten."""

from __future__ import annotations

import asyncio
from pathlib import Path

from harness_haproxy import MONITOR

from vipcast.core.external import DesiredLB, Listener, Member
from vipcast.providers.haproxy.driver import HAProxyDriver
from vipcast.providers.port import Failure, Retry

LB = DesiredLB("web", ("default/web",), "127.0.0.10", (
    Listener("TCP", 20080, (Member("127.0.0.1", 30080, "n1"),), MONITOR, (), "none",
             "ROUND_ROBIN", "default/web"),))


async def _all(driver: HAProxyDriver) -> list[object]:
    return [await driver.ensure(LB), await driver.delete("web"), await driver.names(),
            await driver.get("web")]


def test_a_state_directory_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory's parent should be")
    driver = HAProxyDriver(blocker / "haproxy")
    outcome = asyncio.run(driver.ensure(LB))
    assert isinstance(outcome, Retry) and outcome.failure is Failure.REFUSED, outcome
    assert f"HAProxy state directory {blocker / 'haproxy'}" in outcome.message
    assert blocker.read_text().startswith("a file")


def test_no_haproxy_binary_is_named(tmp_path: Path) -> None:
    driver = HAProxyDriver(tmp_path / "haproxy", haproxy=str(tmp_path / "no-such-haproxy"))
    outcome = asyncio.run(driver.ensure(LB))
    assert isinstance(outcome, Retry) and outcome.failure is Failure.REFUSED, outcome
    assert f"no haproxy binary '{tmp_path / 'no-such-haproxy'}'" in outcome.message
    assert not (tmp_path / "haproxy" / "desired.json").exists()


def test_a_state_file_edited_by_hand_is_named_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "haproxy" / "desired.json"
    state.parent.mkdir()
    for text in ('[{"nom": "web"}]', '{"web": 1}', "[1, 2]", '[{"name": "w', ""):
        state.write_text(text)
        for outcome in asyncio.run(_all(HAProxyDriver(state.parent))):
            assert isinstance(outcome, Retry) and outcome.failure is Failure.REFUSED, outcome
            assert f"{state} is not vipcast's state file" in outcome.message
        assert state.read_text() == text
