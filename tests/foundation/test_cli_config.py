"""``check-config``, ``plan``, ``plan --against`` and ``explain`` on the shipped examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_examples import EXAMPLES, run
from vipcast.sources.state import read_state, state_path, write_state


@pytest.mark.parametrize("name", ["bgp", "l2", "dualstack"])
def test_check_config_valid_examples(name: str) -> None:
    code, out = run("check-config", str(EXAMPLES / name))
    assert code == 0, out
    assert "valid" in out


def test_check_config_bad_lists_every_problem() -> None:
    code, out = run("check-config", str(EXAMPLES / "bad"))
    assert code == 1
    for expected in (
        "pool.yaml", "192.0.2.0/33", "overlaps",
        "references.yaml", "unknown pool 'no-such-pool'", "unknown BGPPeer 'ghost'",
        "alias 'gold'", "peer.yaml", "spec.peerASN", "holdTime", "kinds.yaml", "unknown kind",
        "spec.interface",
    ):
        assert expected in out, expected


def test_check_config_invalid_yaml_and_missing_path(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: IPAddressPool\nmetadata: {name: x\n")
    code, out = run("check-config", str(broken))
    assert code == 1 and "invalid YAML" in out
    code, out = run("check-config", str(tmp_path / "missing"))
    assert code == 1 and "no such file" in out


def test_plan_json_contract_and_state_is_reused(example: object) -> None:
    path = example("bgp")  # type: ignore[operator]
    code, out = run("plan", str(path), "--json")
    assert code == 0, out
    doc = json.loads(out)
    web = doc["services"]["shop/web"]
    assert set(web) >= {"ips", "pool", "reason"} and web["pool"] == "public"
    route = next(r for r in doc["nodes"]["node-c"]["bgp"] if r["services"] == ["shop/web"])
    assert set(route) >= {"prefix", "peers", "communities", "localPref"}
    assert route["communities"] == ["65000:100", "65000:200"]
    assert route["largeCommunities"] == ["64512:1:2"]
    assert route["localPref"] == 150
    assert doc["nodes"]["node-a"]["l2"] == []
    # 192.0.2.0/28 with avoidBuggyIPs: .0 is never handed out, so 15 (as MetalLB counts)
    assert doc["pools"]["public"] == {"used": 2, "total": 15}
    stored = read_state(state_path(path))
    assert stored.exists and stored.assignments["shop/web"] == tuple(web["ips"])
    # a second run gives the same IPs, even after a service sorting earlier appears
    extra = path / "extra.yaml"
    extra.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: aaa, namespace: shop}\n"
        "spec: {type: LoadBalancer, ports: [{port: 80}]}\n"
    )
    code, out = run("plan", str(path), "--json")
    again = json.loads(out)
    for key in ("shop/web", "shop/api", "shop/db"):
        assert again["services"][key]["ips"] == doc["services"][key]["ips"]
    assert again["services"]["shop/aaa"]["ips"]


def test_status_ingress_is_read_as_current(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(
        (EXAMPLES / "l2" / "config.yaml").read_text()
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: x}\n"
        "spec: {type: LoadBalancer, ports: [{port: 80}]}\n"
        "status: {loadBalancer: {ingress: [{ip: 192.0.2.77}]}}\n"
    )
    code, out = run("plan", str(path), "--json", "--no-save")
    assert code == 0, out
    assert json.loads(out)["services"]["x/s"]["ips"] == ["192.0.2.77"]
    assert not state_path(path).exists()


def test_plan_node_filter_and_tables(example: object) -> None:
    path = example("l2")  # type: ignore[operator]
    code, out = run("plan", str(path), "--node", "worker-1", "--json")
    assert code == 0 and list(json.loads(out)["nodes"]) == ["worker-1"]
    code, out = run("plan", str(path))
    assert code == 0 and "Announcements per node" in out and "edge/ingress" in out
    code, out = run("plan", str(path), "--node", "nope")
    assert code == 1 and "no Node 'nope'" in out


def test_plan_against_shows_moves_and_route_changes(example: object, tmp_path: Path) -> None:
    old = example("bgp")  # type: ignore[operator]
    assert run("plan", str(old))[0] == 0
    new = tmp_path / "bgp-new"
    shutil.copytree(old, new)
    # shrink the public pool: whoever held an address outside it must move, with the reason
    before = read_state(state_path(old)).assignments
    pools = (new / "pools.yaml").read_text().replace("192.0.2.0/28", "192.0.2.8/29")
    (new / "pools.yaml").write_text(pools)
    state_path(new).unlink()
    code, out = run("plan", str(new), "--against", str(old), "--json")
    assert code == 0, out
    diff = json.loads(out)
    moved = diff["services"]["shop/web"]
    assert moved["before"] == list(before["shop/web"]) and moved["after"] != moved["before"]
    assert moved["reason"] == "Moved" and "outside every pool" in moved["message"]
    assert "shop/db" not in diff["services"]
    withdrawn = diff["nodes"]["node-a"]["routesWithdrawn"]
    assert any(before["shop/web"][0] in w for w in withdrawn)
    assert not state_path(new).exists()  # a dry run writes nothing
    code, out = run("plan", str(new), "--against", str(old))
    assert code == 0 and "Address changes" in out
    code, out = run("plan", str(old), "--against", str(old))
    assert code == 0 and "no change" in out


def test_explain(example: object) -> None:
    path = example("bgp")  # type: ignore[operator]
    code, out = run("explain", str(path), "shop/api", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["nodes"]["node-c"]["announces"] is True
    assert "Local" in doc["nodes"]["node-a"]["whyNot"][0]
    code, out = run("explain", str(path), "shop/api")
    assert code == 0 and "node-c" in out and "BGP: announces" in out
    code, out = run("explain", str(path), "shop/nope")
    assert code == 1 and "no Service shop/nope" in out
    code, out = run("explain", str(EXAMPLES / "bad"), "x/y")
    assert code == 1 and "problem" in out


def test_explain_refused_request(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(
        (EXAMPLES / "l2" / "config.yaml").read_text()
        + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: x\n"
        "  annotations: {vipcast.io/loadBalancerIPs: 203.0.113.9}\n"
        "spec: {type: LoadBalancer, ports: [{port: 80}]}\n"
    )
    code, out = run("explain", str(path), "x/s", "--json", "--no-save")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["ips"] == [] and doc["reason"] == "RequestedIPOutsidePools"


def test_state_file_roundtrip_and_corruption(tmp_path: Path) -> None:
    target = tmp_path / ".vipcast-state.json"
    write_state(target, {"a/b": ("192.0.2.1",), "c/d": ()})
    assert read_state(target).assignments == {"a/b": ("192.0.2.1",)}
    target.write_text("{not json")
    broken = read_state(target)
    assert broken.problem and broken.assignments == {}
    assert state_path(tmp_path) == target
    assert state_path(tmp_path / "x.yaml") == tmp_path / ".x.yaml.vipcast-state.json"


def test_explain_shows_what_was_given_up(example: object) -> None:
    path = example("l2")  # type: ignore[operator]
    write_state(state_path(path), {"edge/ingress": ("203.0.113.50",)})
    code, out = run("explain", str(path), "edge/ingress", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["reason"] == "Moved"
    assert doc["invalidated"] == [{"ip": "203.0.113.50", "why": "outside every pool"}]
    assert read_state(state_path(path)).assignments["edge/ingress"] == tuple(doc["ips"])
    code, out = run("explain", str(path), "edge/stale")
    assert code == 0 and "no ready endpoint" in out


def test_plan_phase_times_on_stderr_leave_the_document_alone(example: object) -> None:
    """``VIPCAST_PHASE_TIMES=1``: ``vipcast plan --json`` (the real program, its quick exit
    included) prints its phases, in the order it ran them, as one JSON line on stderr; stdout
    holds the very same bytes as without it, and without it stderr stays empty."""
    import os
    import subprocess
    import sys

    path = example("bgp")  # type: ignore[operator]
    argv = [sys.executable, "-m", "vipcast.cli.main", "plan", "--json", "--no-save", str(path)]
    env = {k: v for k, v in os.environ.items() if k != "VIPCAST_PHASE_TIMES"}
    plain = subprocess.run(argv, env=env, capture_output=True, check=True, timeout=120)
    timed = subprocess.run(argv, env={**env, "VIPCAST_PHASE_TIMES": "1"}, capture_output=True,
                           check=True, timeout=120)
    assert plain.stderr == b""
    assert timed.stdout == plain.stdout and json.loads(plain.stdout)["version"] == 1
    # written with os.writev to the pipe: the bytes a replaced stdout gets joined
    code, out = run("plan", str(path), "--json", "--no-save")
    assert code == 0 and out.encode() == plain.stdout
    report = json.loads(timed.stderr.decode().strip().splitlines()[-1])
    assert list(report["phases"]) == ["before the command (start, imports)",
                                      "read + validate YAML", "allocate", "plan",
                                      "encode + write"]
    for name, phase in report["phases"].items():
        assert phase["cpu_s"] >= 0, name
    assert report["gc_collections"] == 0  # the command runs with the cyclic collector off
    assert report["max_rss_kib"] > 0 and report["write_s"] >= 0
