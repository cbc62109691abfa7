"""``l2_config``: the L2 membership is the Nodes that could own an address (Ready, and
selected by some L2Advertisement), so a node without a speaker never counts against quorum."""

from __future__ import annotations

from typing import Any

from vipcast.app.node import l2_config
from vipcast.runtime.membership import DEFAULT_PORT
from vipcast.spec import Spec, load_documents

KEY = b"k" * 32


def _node(name: str, ip: str | None, role: str, ready: str | None = "True") -> dict[str, Any]:
    status: dict[str, Any] = {}
    if ip:
        status["addresses"] = [{"type": "InternalIP", "address": ip}]
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready}]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"role": role}}, "status": status}


def _l2(name: str, *roles: str) -> dict[str, Any]:
    return {"apiVersion": "vipcast.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": name},
            "spec": {"ipAddressPools": ["p"],
                     "nodeSelectors": [{"matchLabels": {"role": r}} for r in roles]}}


def _spec(*advertisements: dict[str, Any]) -> Spec:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p"},
         "spec": {"addresses": ["192.0.2.0/28"]}},
        _node("w1", "198.51.100.1", "worker"),
        _node("w2", "198.51.100.2", "worker"),
        _node("cp", "198.51.100.10", "control-plane"),
        _node("sick", "198.51.100.3", "worker", ready="False"),
        _node("unknown", "198.51.100.4", "worker", ready="Unknown"),
        _node("bare", None, "worker"),
        _node("edge", "198.51.100.5", "edge", ready=None),  # no conditions: counts as Ready
        *advertisements,
    ]
    return load_documents(("test.yaml", d) for d in docs)


def test_only_ready_selected_nodes_are_members() -> None:
    config = l2_config(_spec(_l2("workers", "worker")), "w1", KEY)
    assert config.node == "w1"
    assert config.bind == ("198.51.100.1", DEFAULT_PORT)
    # cp: not selected (no speaker there); sick/unknown: not Ready; bare: no address
    assert dict(config.peers) == {"w2": ("198.51.100.2", DEFAULT_PORT)}
    assert config.key == KEY


def test_any_advertisement_selects_and_no_selector_means_every_node() -> None:
    both = l2_config(_spec(_l2("workers", "worker"), _l2("edges", "edge")), "w1", KEY)
    assert set(both.peers) == {"w2", "edge"}
    everyone = l2_config(_spec(_l2("all")), "w1", KEY)
    assert set(everyone.peers) == {"w2", "cp", "edge"}


def test_the_node_itself_is_always_a_member() -> None:
    # even where no advertisement selects it (or it is not Ready yet) it keeps its own
    # membership socket and sees the selected nodes
    config = l2_config(_spec(_l2("workers", "worker")), "cp", KEY)
    assert config.node == "cp"
    assert config.bind == ("198.51.100.10", DEFAULT_PORT)
    assert set(config.peers) == {"w1", "w2"}
    sick = l2_config(_spec(_l2("workers", "worker")), "sick", KEY)
    assert set(sick.peers) == {"w1", "w2"}
