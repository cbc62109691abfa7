"""L2 owner ranking: golden vectors (the score must never change), fast path = definition,
stability across processes, spread and minimal disruption."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from vipcast.core.ownership import Ranking, key, l2_candidates, mix, score

#: (node, ip) -> score. Nodes of different vipcast versions must agree: never edit these.
GOLDEN = {
    ("node-0", "192.0.2.10"): 2979628320837448683,
    ("node-1", "192.0.2.10"): 6636563524212750035,
    ("w1", "2001:db8::10"): 5047262950673349710,
    ("worker-α", "198.51.100.7"): 10877139822279486299,
}
NODES4 = ["node-0", "node-1", "node-2", "node-3"]


def test_golden_keys_and_scores() -> None:
    assert key("node-0") == 0xBA61C8329725FF99
    assert key("w1") == 0xECB6A2AE1C35F876
    for (node, ip), value in GOLDEN.items():
        assert score(node, ip) == value
    assert l2_candidates("192.0.2.10", NODES4) == ("node-0", "node-1", "node-2", "node-3")
    assert l2_candidates("2001:db8::10", NODES4) == ("node-0", "node-2", "node-1", "node-3")


def test_score_follows_its_written_definition() -> None:
    def k(text: str) -> int:
        d = hashlib.blake2b(text.encode("utf-8"), digest_size=8, person=b"vipcast-l2").digest()
        return int.from_bytes(d, "big")

    m = 2**64
    z = k("node-0") ^ k("192.0.2.10")
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % m
    assert z ^ (z >> 31) == score("node-0", "192.0.2.10")
    assert mix(0) == 0


def test_same_scores_in_another_process_with_another_hash_seed() -> None:
    code = (
        "from vipcast.core.ownership import score, l2_candidates\n"
        f"print([score(n, ip) for n, ip in {list(GOLDEN)!r}])\n"
        "print(l2_candidates('192.0.2.77', ['c', 'a', 'b', 'd', 'e']))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
        timeout=60,
    ).stdout.splitlines()
    assert out[0] == repr(list(GOLDEN.values()))
    assert out[1] == repr(l2_candidates("192.0.2.77", ["c", "a", "b", "d", "e"]))


names = st.text(min_size=1, max_size=12)
ips = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)
)


@given(st.lists(names, max_size=40), ips)
def test_ranking_equals_sorting_by_score(nodes: list[str], ip: str) -> None:
    expected = tuple(sorted(set(nodes), key=lambda n: (score(n, ip), n)))
    assert Ranking(nodes).order(ip) == expected
    assert Ranking(nodes).scores(ip) == tuple(score(n, ip) for n in sorted(set(nodes)))
    assert l2_candidates(ip, reversed(nodes)) == expected


@given(st.lists(names, min_size=2, max_size=20, unique=True), ips, st.data())
def test_removing_a_node_keeps_the_others_order(
    nodes: list[str], ip: str, data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(nodes))
    before = l2_candidates(ip, nodes)
    after = l2_candidates(ip, [n for n in nodes if n != gone])
    assert after == tuple(n for n in before if n != gone)


def test_owners_spread_and_removal_moves_only_the_removed_nodes_addresses() -> None:
    nodes = [f"node-{i}" for i in range(10)]
    addresses = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(2000)]
    ranking = Ranking(nodes)
    owners = {ip: ranking.order(ip)[0] for ip in addresses}
    shares = Counter(owners.values())
    assert set(shares) == set(nodes)
    assert all(120 <= n <= 280 for n in shares.values()), shares  # 200 each on average
    fewer = Ranking(nodes[1:])
    moved = {ip for ip in addresses if fewer.order(ip)[0] != owners[ip]}
    assert moved == {ip for ip, owner in owners.items() if owner == "node-0"}


def test_empty_and_single_node() -> None:
    assert l2_candidates("192.0.2.1", []) == ()
    assert l2_candidates("192.0.2.1", ["only"]) == ("only",)
