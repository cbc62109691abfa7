"""Local VIP routes via pyroute2 in a fresh namespace: idempotent, ours only."""

from __future__ import annotations

import pytest

from vipcast.dataplane.routes import LocalVips
from vipcast.lab.netns import run_command

pytestmark = pytest.mark.netns


def _local_table(ns: str, v6: bool = False) -> str:
    fam = "-6" if v6 else "-4"
    return run_command(["ip", "-n", ns, fam, "route", "show", "table", "local"]).stdout


def test_sync_is_idempotent_and_removes_only_ours(fresh_ns: str) -> None:
    # somebody else's local route for an address we will also want, and one we never touch
    run_command(["ip", "-n", fresh_ns, "route", "add", "local", "203.0.113.99", "dev", "lo",
                 "table", "local"])
    vips = LocalVips(fresh_ns)
    first = vips.sync(["203.0.113.10", "2001:db8:f::10"])
    assert first.added == ("203.0.113.10", "2001:db8:f::10")
    assert vips.sync(["203.0.113.10", "2001:db8:f::10"]).changed is False
    assert "local 203.0.113.10 dev lo proto 249" in _local_table(fresh_ns)
    assert "2001:db8:f::10 dev lo proto 249" in _local_table(fresh_ns, v6=True)
    assert vips.current() == {"203.0.113.10", "2001:db8:f::10"}
    swap = vips.sync(["203.0.113.11"])
    assert swap.added == ("203.0.113.11",)
    assert set(swap.removed) == {"203.0.113.10", "2001:db8:f::10"}
    assert vips.clear().removed == ("203.0.113.11",)
    assert "203.0.113.99" in _local_table(fresh_ns)


def test_vip_is_accepted_locally(fresh_ns: str) -> None:
    LocalVips(fresh_ns).sync(["203.0.113.10"])
    out = run_command(["ip", "netns", "exec", fresh_ns, "ping", "-c1", "-W2", "203.0.113.10"])
    assert "1 received" in out.stdout
