"""The drain driver on a manual clock, and ``vipcast drain/undrain`` editing the files."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tests.foundation.test_plan import bgp_adv, load, node, peer, pool, service, slice_
from typer.testing import CliRunner

from vipcast.app.drain import DrainDriver
from vipcast.cli.main import app
from vipcast.core.allocation import allocate_spec
from vipcast.core.desired import NodePlan
from vipcast.core.drain import DrainState, Phase
from vipcast.core.pipeline import Local
from vipcast.core.plan import plan_node
from vipcast.runtime.clock import ManualClock
from vipcast.spec import Spec


def spec_with(drain: bool) -> Spec:
    doc = node("n1")
    if drain:
        doc["metadata"]["annotations"] = {"vipcast.io/drain": "true"}
    return load(pool("p", "192.0.2.0/28"), peer("r"), bgp_adv("a"), doc,
                service("web"), slice_("web", ("10.0.0.1", "n1", True)))


@dataclass
class Agent:
    """The two things the driver asks of the agent (the Drainable port)."""

    spec: Spec
    local: Local = field(default_factory=Local)
    phases: list[tuple[Phase, str]] = field(default_factory=list)

    def drain_inputs(self) -> tuple[Spec, NodePlan]:
        return self.spec, plan_node(self.spec, allocate_spec(self.spec).current(), "n1")

    def servable_now(self) -> frozenset[str] | None:
        return self.local.servable

    async def set_drain(self, phase: Phase, state: str) -> None:
        self.phases.append((phase, state))


async def _settle(driver: DrainDriver, clock: ManualClock) -> None:
    driver.kick()
    await clock.settle()


def test_drain_sequence_on_a_manual_clock() -> None:
    async def main() -> None:
        clock = ManualClock()
        agent = Agent(spec_with(False))
        driver = DrainDriver(agent, "n1", clock, grace=30.0)
        await _settle(driver, clock)
        assert agent.phases == [] and driver.state is DrainState.SERVING
        agent.spec = spec_with(True)
        await _settle(driver, clock)
        assert agent.phases == [(Phase.GRACEFUL_SHUTDOWN, "draining")]
        await clock.advance(29.0)
        assert driver.state is DrainState.DRAINING  # not before the grace
        await clock.advance(1.5)
        assert agent.phases[-1] == (Phase.WITHDRAWN, "drained")
        # undrain while the backends are not verified: stays withdrawn
        agent.spec = spec_with(False)
        agent.local = Local(servable=frozenset())
        await _settle(driver, clock)
        assert agent.phases[-1] == (Phase.WITHDRAWN, "undraining")
        # health verified: announced again
        agent.local = Local(servable=frozenset({"ns/web"}))
        await _settle(driver, clock)
        assert agent.phases[-1] == (Phase.ANNOUNCE, "serving")
        await driver.stop()

    asyncio.run(main())


def test_undrain_during_the_grace_cancels_the_timer() -> None:
    async def main() -> None:
        clock = ManualClock()
        agent = Agent(spec_with(True))
        driver = DrainDriver(agent, "n1", clock, grace=10.0)
        await _settle(driver, clock)
        agent.spec = spec_with(False)
        await _settle(driver, clock)
        await clock.advance(60.0)
        assert [s for _, s in agent.phases] == ["draining", "serving"]
        await driver.stop()

    asyncio.run(main())


def test_drain_and_undrain_commands_edit_the_node(tmp_path: Path) -> None:
    objects = tmp_path / "objects.yaml"
    objects.write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}},
    ]))
    runner = CliRunner()
    result = runner.invoke(app, ["drain", "n2", "--config", str(tmp_path)])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(objects.read_text()))
    assert docs[1]["metadata"]["annotations"] == {"vipcast.io/drain": "true"}
    assert "annotations" not in docs[0]["metadata"]
    result = runner.invoke(app, ["undrain", "n2", "--config", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "annotations" not in list(yaml.safe_load_all(objects.read_text()))[1]["metadata"]
    # an unknown node: a clear reason, exit 2, the files unchanged
    before = objects.read_text()
    result = runner.invoke(app, ["drain", "ghost", "--config", str(tmp_path)])
    assert result.exit_code == 2
    assert "no Node 'ghost'" in result.output and "n1, n2" in result.output
    assert objects.read_text() == before


@dataclass
class Counter:
    """A stand-in for the nftables counter: counts as the test says."""

    counts: list[int]
    installed: list[list[str]] = field(default_factory=list)
    removed: int = 0

    def install(self, addresses: Sequence[str]) -> None:
        self.installed.append(list(addresses))

    def read(self) -> int:
        return self.counts.pop(0) if len(self.counts) > 1 else self.counts[0]

    def remove(self) -> None:
        self.removed += 1


def test_a_quiet_counter_ends_the_wait_before_the_grace() -> None:
    async def main() -> None:
        clock = ManualClock()
        agent = Agent(spec_with(True))
        counter = Counter([0, 4, 9, 12, 12])  # still arriving, then nothing more
        driver = DrainDriver(agent, "n1", clock, grace=60.0, counter=counter, quiet=3.0)
        await _settle(driver, clock)
        assert driver.state is DrainState.DRAINING
        assert counter.installed == [["192.0.2.0"]]
        for _ in range(5):
            await clock.advance(1.0)
        assert driver.state is DrainState.DRAINING  # 12 at t=3 and t=4: not quiet for 3 s
        for _ in range(3):
            await clock.advance(1.0)
        assert driver.state is DrainState.DRAINED and agent.phases[-1][1] == "drained"
        # 12 since t=3: quiet for 3 s at t=6, long before the grace of 60
        assert driver.entered_at == clock.start + 6.0 and counter.removed == 1
        await driver.stop()

    asyncio.run(main())


def test_a_busy_counter_leaves_the_grace_to_end_the_wait() -> None:
    async def main() -> None:
        clock = ManualClock()
        agent = Agent(spec_with(True))
        counter = Counter(list(range(0, 1000, 7)))  # the routers keep sending
        driver = DrainDriver(agent, "n1", clock, grace=20.0, counter=counter, quiet=3.0)
        await _settle(driver, clock)
        for _ in range(19):
            await clock.advance(1.0)
        assert driver.state is DrainState.DRAINING
        await clock.advance(1.5)
        assert driver.state is DrainState.DRAINED and counter.removed == 1
        await driver.stop()

    asyncio.run(main())
