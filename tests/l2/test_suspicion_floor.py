"""The suspicion floor (``Timers.suspicion_min``) as a user setting: ``--suspicion-min`` on
``vipcast agent``, ``vipcast speaker`` and ``vipcast.app.l2_standalone``,
``AgentOptions.suspicion_min``, ``L2Config.suspicion_min``. A bad value is refused with an
error naming the option (or the field) before anything starts; a good one reaches the
membership's timers and changes what the protocol does (docs/membership.md, "The suspicion
floor")."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from swim_cluster import cluster, swim
from typer.testing import CliRunner

from vipcast.app.agent_values import AgentOptions
from vipcast.app.l2_standalone import parse_args
from vipcast.app.liveness import NodeLiveness
from vipcast.app.node_consumers import l2_config_of
from vipcast.cli.main import app
from vipcast.core.desired import L2Member, NodePlan
from vipcast.proto.membership import SUSPICION_MIN_RANGE, Timers, suspicion_min_problem
from vipcast.runtime.l2.driver import L2Config, L2Runtime

BAD = [0.0, 0.01, -1.0, 30.5, 120, math.nan, math.inf, True, "0.3"]


def test_the_defaults_stay_and_a_user_floor_replaces_only_the_floor() -> None:
    assert Timers.lan(3).suspicion_min == 0.12
    assert Timers.lan(17).suspicion_min == 0.2
    assert Timers.lan(3, None) == Timers.lan(3)
    assert Timers.lan(3, 0.45) == Timers(
        **{**Timers.lan(3).__dict__, "suspicion_min": 0.45})
    assert Timers.lan(40, 0.45).probe_interval == Timers.lan(40).probe_interval
    low, high = SUSPICION_MIN_RANGE
    assert Timers.lan(3, low).suspicion_min == low
    assert Timers.lan(3, high).suspicion_min == high
    # the stall tolerance follows it
    assert Timers.lan(3, 0.45).stall_tolerance() == pytest.approx(0.05 + 0.45)


@pytest.mark.parametrize("value", BAD)
def test_a_bad_floor_is_refused_naming_the_field(value: object) -> None:
    assert suspicion_min_problem(value) is not None
    with pytest.raises(ValueError, match=r"^suspicion_min must be"):
        Timers.lan(3, value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^AgentOptions\.suspicion_min must be"):
        AgentOptions(config_paths=(), node="n1", suspicion_min=value)  # type: ignore[arg-type]


def test_the_agent_refuses_a_bad_floor_before_starting(tmp_path: Path) -> None:
    runner = CliRunner()
    for command in (["agent", "--config", str(tmp_path), "--node", "n1"],
                    ["speaker", "--node", "n1"]):
        for value, said in (("0.01", "must be between 0.05 and 30 seconds, not 0.01"),
                            ("nan", "not nan"), ("31", "not 31.0")):
            result = runner.invoke(app, [*command, "--suspicion-min", value])
            assert result.exit_code == 2, (command, value, result.output)
            text = " ".join(result.output.replace("│", " ").split())
            assert "Invalid value for '--suspicion-min'" in text, text
            assert said in text, text


def test_the_standalone_responder_refuses_a_bad_floor(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--node", "a", "--interface", "eth0"]
    assert parse_args([*base, "--suspicion-min", "0.3"]).suspicion_min == 0.3
    assert parse_args(base).suspicion_min is None
    for value in ("0.01", "abc", "inf"):
        with pytest.raises(SystemExit) as exc:
            parse_args([*base, "--suspicion-min", value])
        assert exc.value.code == 2
        assert "argument --suspicion-min: must be" in capsys.readouterr().err


def test_the_floor_reaches_the_membership_of_l2_and_of_node_liveness() -> None:
    plan = NodePlan(node="a", l2_members=(L2Member("a", "192.0.2.1"),
                                          L2Member("b", "192.0.2.2"),
                                          L2Member("c", "192.0.2.3")))
    config = l2_config_of(plan, b"k" * 16, 0.4)
    assert config.suspicion_min == 0.4
    runtime = L2Runtime(config, CollectorRegistry(), boot=1)  # nothing opens before start()
    assert runtime.membership.timers.suspicion_min == 0.4
    default = L2Runtime(L2Config("a", {"b": ("192.0.2.2", 7946)}, b"k" * 16),
                        CollectorRegistry(), boot=1)
    assert default.membership.timers.suspicion_min == 0.12
    with pytest.raises(ValueError, match=r"^suspicion_min must be"):
        L2Runtime(L2Config("a", {"b": ("192.0.2.2", 7946)}, b"k" * 16, suspicion_min=0.001),
                  CollectorRegistry(), boot=1)
    liveness = NodeLiveness("a", b"k" * 16, lambda dead: None, suspicion_min=0.4)
    assert liveness._suspicion_min == 0.4


def test_a_higher_floor_rides_out_a_stall_the_default_reads_as_a_death() -> None:
    """What the setting is for: with the default floor (0.12 s, tolerance 0.17 s) a 0.3 s stall
    of a member is a (false) death; with a floor of 0.45 s (tolerance 0.5 s) it is not."""
    stall = 0.3
    for floor, deaths in ((None, True), (0.45, False)):
        sim = cluster(3, seed=7, timers=Timers.lan(3, floor))
        assert swim(sim, "n1").timers.suspicion_min == (floor or 0.12)
        sim.stall("n2", sim.now + 0.01, stall)
        sim.run_until(sim.now + 2.0)
        assert bool(sim.false_deaths) is deaths, (floor, sim.false_deaths)
        assert all(len(swim(sim, n).view.alive) == 3 for n in sim.up)
