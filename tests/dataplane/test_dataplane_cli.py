"""``vipcast dataplane render|apply|show|cleanup`` and the plan file round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from dp_plans import MIXED
from typer.testing import CliRunner

from vipcast.cli.main import app
from vipcast.core.desired import NodePlan
from vipcast.dataplane.planfile import PlanFileError, plan_from_data, plan_to_data

PLAN = NodePlan(node="n1", nat=MIXED, local_vips=("203.0.113.10", "2001:db8:f::10"))


def test_plan_file_round_trip() -> None:
    assert plan_from_data(yaml.safe_load(yaml.safe_dump(plan_to_data(PLAN)))) == PLAN
    with pytest.raises(PlanFileError):
        plan_from_data({"nat": [{"service": "a/b", "vip": "203.0.113.1"}]})
    with pytest.raises(PlanFileError):
        plan_from_data({"nat": [{"service": "a/b", "vip": "203.0.113.1", "port": 1,
                                 "protocol": "ICMP"}]})


def test_render_prints_the_transaction(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(plan_to_data(PLAN)))
    out = CliRunner().invoke(app, ["dataplane", "render", str(plan_file),
                                   "--down", "192.0.2.6:8080"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["nftables"][2] == {"delete": {"table": {"family": "inet", "name": "vipcast"}}}
    assert "192.0.2.6" not in json.dumps([c for c in doc["nftables"] if "rule" in c.get("add", {})
                                          and c["add"]["rule"].get("comment") == "default/web"])


def test_render_without_plan_is_a_usage_error() -> None:
    assert CliRunner().invoke(app, ["dataplane", "render"]).exit_code == 2


@pytest.mark.netns
def test_apply_show_cleanup_in_a_namespace(tmp_path: Path, fresh_ns: str) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan_to_data(PLAN)))
    runner = CliRunner()
    first = runner.invoke(app, ["dataplane", "apply", str(plan_file), "--netns", fresh_ns])
    assert first.exit_code == 0 and "applied" in first.stdout, first.output
    again = runner.invoke(app, ["dataplane", "apply", str(plan_file), "--netns", fresh_ns])
    assert again.exit_code == 0 and "unchanged" in again.stdout
    shown = json.loads(runner.invoke(app, ["dataplane", "show", "--netns", fresh_ns]).stdout)
    assert shown["local_vips"] == ["2001:db8:f::10", "203.0.113.10"]
    assert shown["table"]
    gone = runner.invoke(app, ["dataplane", "cleanup", "--netns", fresh_ns])
    assert "removed" in gone.stdout
    shown = json.loads(runner.invoke(app, ["dataplane", "show", "--netns", fresh_ns]).stdout)
    assert shown == {"table": None, "local_vips": []}
