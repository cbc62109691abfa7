"""Live L2 membership with full agents on a namespaced LAN: a Node added to the config after
three agents run joins every member's view without a restart and becomes an owner candidate; a
Node removed from the config leaves every member's view, again without a restart.

The VIP's preference order over n1-n4 is n2, n3, n4, n1 (``l2_candidates``): with n2's and n3's
backends stopped (``externalTrafficPolicy: Local``), the newcomer n4 is the node that must
answer, and the client's request is carried by n4's backend.
"""

from __future__ import annotations

from typing import Any

import pytest
from agent_lan import AgentLan

from vipcast.lab.netns import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def members_seen(lan: AgentLan, node: str) -> set[str] | None:
    """The members ``node``'s agent knows (itself and its peers), from its /status."""
    l2 = lan.status(node).get("l2")
    if not isinstance(l2, dict) or "membership" not in l2:
        return None
    membership: dict[str, Any] = l2["membership"]
    return {membership["node"], *membership["peers"]}


def test_node_added_then_removed_without_restarts(agent_lan4: AgentLan) -> None:
    lan = agent_lan4
    first_three = ("n1", "n2", "n3")
    for node in first_three:
        lan.start_agent(node)
    lan.wait_converged()
    pids = {n: lan.agents[n].pid for n in first_three}
    assert all(members_seen(lan, n) == set(first_three) for n in first_three)

    # n4's Node object (and its endpoint) appear in the config; its agent starts
    lan.set_configured(("n1", "n2", "n3", "n4"))
    lan.start_agent("n4")
    statuses = lan.wait_converged()
    assert set(statuses) == {"n1", "n2", "n3", "n4"}
    for node in first_three:
        assert sorted(statuses[node]["membership"]["alive"]) == ["n1", "n2", "n3", "n4"]
        assert lan.agents[node].alive() and lan.agents[node].pid == pids[node], node
    assert lan.candidates() == ("n2", "n3", "n4", "n1")
    lan.wait_sole_owner("n2")

    # n4 is an owner candidate: once n2 and n3 cannot serve, it answers
    lan.stop_backend("n2")
    lan.stop_backend("n3")
    lan.wait_sole_owner("n4", timeout=60)
    assert lan.get() == "n4"

    # n4 leaves the config: every remaining member forgets it, nobody restarts
    lan.start_backend("n2")
    lan.start_backend("n3")
    lan.set_configured(first_three)
    wait_until(
        lambda: all(members_seen(lan, n) == set(first_three) for n in first_three),
        timeout=60, interval=0.3, what="n4 gone from every member's view",
        on_timeout=lan.topo.logs,
    )
    lan.kill_agent("n4")
    statuses = lan.wait_converged()
    for node in first_three:
        assert sorted(statuses[node]["membership"]["alive"]) == list(first_three)
        assert lan.agents[node].pid == pids[node], node
    lan.wait_sole_owner("n2", timeout=60)
    assert lan.get() == "n2"
