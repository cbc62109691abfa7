"""``vipcast status`` tables from a /status document (BGP, BFD, L2), without an agent."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from vipcast.cli.agent_cmds import bfd_table, l2_tables, status_tables

DOCUMENT: dict[str, Any] = {
    "node": "n1",
    "peers": [],
    "bfd": {
        "r": {"peer": "192.0.2.1", "multihop": False, "state": "UP", "remote_state": "UP",
              "tx_interval_ms": 100.0, "rx_interval_ms": 150.0, "detect_mult": 3,
              "remote_detect_mult": 4, "detection_time_ms": 600.0,
              "last_diag": "CONTROL_DETECTION_TIME_EXPIRED", "uptime_s": 3725.2},
    },
    "l2": {
        "node": "n1",
        "vips": [{"ip": "192.0.2.64", "owner": "n2", "candidates": ["n2", "n1"],
                  "interfaces": ["eth0"], "answering_here": False, "servable_here": True}],
        "membership": {"node": "n1", "alive": ["n1", "n2"], "quorum": True,
                       "serving": ["192.0.2.64"],
                       "peers": {"n2": {"state": "alive", "last_heard_s": 0.05,
                                        "serving": ["192.0.2.64"]},
                                 "n3": {"state": "dead", "last_heard_s": None, "serving": []}}},
        "interface_errors": {"eth9": "no such device"},
    },
}  # fmt: skip


def render(*tables: Any) -> str:
    console = Console(width=200, record=True, color_system=None)
    for table in tables:
        console.print(table)
    return console.export_text()


def test_bfd_table_shows_negotiated_timers_diag_and_uptime() -> None:
    text = render(bfd_table(DOCUMENT))
    for needle in ("BFD sessions of n1", "192.0.2.1", "UP", "100", "150", "3/4", "600",
                   "CONTROL_DETECTION_TIME_EXPIRED", "1h02m05s"):  # fmt: skip
        assert needle in text, (needle, text)


def test_l2_tables_show_owner_duties_and_membership() -> None:
    text = render(*l2_tables(DOCUMENT))
    for needle in ("L2 VIPs (seen from n1)", "192.0.2.64", "n2,n1", "eth0",
                   "2/3 alive, quorum", "n1 (self)", "dead", "never", "0.05s ago",
                   "eth9: no such device"):  # fmt: skip
        assert needle in text, (needle, text)


def test_sections_absent_without_bfd_or_l2() -> None:
    bare = {"node": "n1", "peers": []}
    assert bfd_table(bare) is None
    assert l2_tables(bare) == []
    assert len(status_tables(bare)) == 1
    assert len(status_tables(DOCUMENT)) == 4


def test_no_quorum_and_no_owner_are_flagged() -> None:
    l2 = dict(DOCUMENT["l2"])
    l2["membership"] = {**l2["membership"], "quorum": False, "alive": ["n1"]}
    l2["vips"] = [{**l2["vips"][0], "owner": None}]
    text = render(*l2_tables({"node": "n1", "l2": l2}))
    assert "NO QUORUM" in text and "none" in text
