"""The CNI examples through the CLI: check-config, plan, and ``vipcast handoff``."""

from __future__ import annotations

import pytest
import yaml

from cli_examples import EXAMPLES, run


@pytest.mark.parametrize("name", ["cni-separate", "cni-handoff"])
def test_cni_examples_are_valid(name: str) -> None:
    code, out = run("check-config", str(EXAMPLES / name))
    assert code == 0, out


def test_separate_identity_example_plans_each_node_to_its_own_peer(example: object) -> None:
    # the Nodes carry no kubernetes.io/hostname label: the planner defaults it to the node's
    # name, as the sessions do, so the peers' hostname selectors get routes
    path = example("cni-separate")  # type: ignore[operator]
    code, out = run("plan", str(path), "--json")
    assert code == 0, out
    doc = yaml.safe_load(out)
    routes = {n: [(r["prefix"], tuple(r["peers"])) for r in plan["bgp"]]
              for n, plan in doc["nodes"].items()}
    assert routes == {"node-a": [("198.51.100.0/32", ("tor-node-a",))],
                      "node-b": [("198.51.100.0/32", ("tor-node-b",))]}


def test_check_config_names_a_collision(example: object) -> None:
    path = example("cni-separate")  # type: ignore[operator]
    text = (path / "config.yaml").read_text().replace("sourceAddress: 192.0.2.42",
                                                      "sourceAddress: 192.0.2.12")
    (path / "config.yaml").write_text(text)
    code, out = run("check-config", str(path))
    assert code == 1
    assert "config.yaml" in out and "BGPPeer/tor-node-b" in out
    # the source address and the router ID taken from it: both the node's, the CNI's
    assert "2 problem(s)" in out and "spec.sourceAddress" in out and "spec.routerID" in out


def test_handoff_prints_the_bird_file_frr_objects_and_calico_patch(example: object) -> None:
    path = example("cni-handoff")  # type: ignore[operator]
    code, out = run("handoff", str(path), "--node", "node-a")
    assert code == 0, out
    assert "protocol static vipcast_handoff {" in out
    assert "route 198.51.100.0/32 blackhole { bgp_community.add((65000,100)); };" in out
    code, out = run("handoff", str(path), "--format", "bird")
    assert code == 2 and "needs --node" in out
    # the same config handed to FRR-K8s, then to Calico
    config = path / "config.yaml"
    text = config.read_text()
    config.write_text(text.replace(
        "    birdInclude:\n      path: /etc/bird/vipcast-handoff.conf\n"
        "      controlSocket: /run/bird/bird.ctl\n", "    frrK8s: {namespace: frr}\n"))
    code, out = run("handoff", str(path), "--format", "frr")
    assert code == 0, out
    docs = list(yaml.safe_load_all(out))
    assert [d["metadata"]["name"] for d in docs] == ["vipcast-node-a", "vipcast-node-b"]
    neighbor = docs[0]["spec"]["bgp"]["routers"][0]["neighbors"][0]
    assert neighbor["toAdvertise"]["allowed"]["prefixes"] == ["198.51.100.0/32"]
    config.write_text(text.replace(
        "    birdInclude:\n      path: /etc/bird/vipcast-handoff.conf\n"
        "      controlSocket: /run/bird/bird.ctl\n", "    calico: {}\n"))
    code, out = run("handoff", str(path), "--format", "calico")
    assert code == 0, out
    (doc,) = yaml.safe_load_all(out)
    assert doc["metadata"]["name"] == "default"
    assert doc["spec"]["serviceLoadBalancerIPs"] == [{"cidr": "198.51.100.0/32"}]
