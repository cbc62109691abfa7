"""Apply, read back, re-apply, change and remove the table in a fresh namespace (real kernel)."""

from __future__ import annotations

import json

import pytest
from dp_plans import CLUSTER_WEB, LOCAL_WEB, MIXED, scale_rules

from vipcast.dataplane.netns_switch import NetnsError, inside
from vipcast.dataplane.nft import NftTable, canonical
from vipcast.dataplane.nft_render import down_set, render
from vipcast.lab.netns import run_command

pytestmark = pytest.mark.netns


def _listing(ns: str) -> str:
    argv = ["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "vipcast"]
    return run_command(argv).stdout


def test_apply_read_back_equals_render(fresh_ns: str) -> None:
    table = NftTable(fresh_ns)
    assert table.read() is None
    rendered = render(MIXED)
    first = table.apply(rendered)
    assert first.ok and first.changed, first.error
    assert table.read() == canonical(rendered.objects)


def test_reapply_is_a_noop_even_from_a_new_process_view(fresh_ns: str) -> None:
    rendered = render(MIXED)
    assert NftTable(fresh_ns).apply(rendered).changed
    handles_before = _listing(fresh_ns)
    # a restarted agent: a new NftTable, same plan -> adopts the table, sends nothing
    again = NftTable(fresh_ns).apply(rendered)
    assert again.ok and not again.changed and again.diff.empty
    assert _listing(fresh_ns) == handles_before


def test_change_and_remove(fresh_ns: str) -> None:
    table = NftTable(fresh_ns)
    table.apply(render((CLUSTER_WEB,)))
    changed = table.apply(render((CLUSTER_WEB, LOCAL_WEB)))
    assert changed.ok and changed.changed and changed.mode == "patch"
    assert table.read() == canonical(render((CLUSTER_WEB, LOCAL_WEB)).objects)
    # a new one-backend service: elements only (the chain and maps of slot 0 exist already)
    assert changed.diff.added == ()
    assert set(changed.diff.changed) == {"map svc4", "map addr4-0", "map port4-0"}
    assert "203.0.113.11" in _listing(fresh_ns)
    health = table.apply(render((CLUSTER_WEB, LOCAL_WEB), down_set([("192.0.2.6", 8080)])))
    assert health.changed and "192.0.2.6 . 8080" not in _listing(fresh_ns)
    removed = table.apply(render(()))
    assert removed.ok and "203.0.113" not in _listing(fresh_ns)
    assert table.cleanup() is True
    assert table.read() is None
    assert table.cleanup() is False


def test_broken_document_leaves_previous_table(fresh_ns: str) -> None:
    table = NftTable(fresh_ns)
    good = render((CLUSTER_WEB,))
    table.apply(good)
    before = table.read()
    doc = render((CLUSTER_WEB, LOCAL_WEB)).document()
    # the last command of the batch is invalid: a rule in a chain that does not exist
    doc["nftables"].append(
        {"add": {"rule": {"family": "inet", "table": "vipcast", "chain": "nope", "expr": [
            {"accept": None}]}}}
    )
    result = table.run_document(doc)
    assert not result.ok and result.error
    assert table.read() == before


def test_table_survives_and_other_tables_untouched(fresh_ns: str) -> None:
    run_command(["ip", "netns", "exec", fresh_ns, "nft", "add", "table", "inet", "someone"])
    table = NftTable(fresh_ns)
    table.apply(render(MIXED))
    table.apply(render((CLUSTER_WEB,)))
    table.cleanup()
    out = run_command(["ip", "netns", "exec", fresh_ns, "nft", "-j", "list", "tables"]).stdout
    names = [o["table"]["name"] for o in json.loads(out)["nftables"] if "table" in o]
    assert names == ["someone"]


def test_unknown_namespace_is_an_error() -> None:
    with pytest.raises(NetnsError), inside("vc-does-not-exist-anywhere"):
        pass


def test_patches_keep_the_kernel_equal_to_the_render(fresh_ns: str) -> None:
    """A walk through plans: every step's read-back equals its render (patch or replace)."""
    table = NftTable(fresh_ns)
    steps = [
        (),
        (CLUSTER_WEB,),
        MIXED,
        MIXED[:3],
        tuple(reversed(MIXED[2:])),
        scale_rules(20, 3),
        scale_rules(20, 3, bump=1),
        scale_rules(19, 3),
        (),
    ]
    modes = []
    for rules in steps:
        for down in ((), [("192.0.2.2", 8080), ("198.19.0.0", 8081)]):
            rendered = render(rules, down_set(down))
            result = table.apply(rendered)
            assert result.ok, result.error
            modes.append(result.mode)
            assert table.read() == canonical(rendered.objects)
    assert "patch" in modes and "none" in modes


def test_one_backend_change_is_a_small_patch(fresh_ns: str) -> None:
    table = NftTable(fresh_ns)
    table.apply(render(scale_rules(50, 4)))
    result = table.apply(render(scale_rules(50, 4, bump=1)))
    # the bumped backend is the local one (slot 0): only its port element changes
    assert result.mode == "patch" and result.diff.changed == ("map port4-0",)
