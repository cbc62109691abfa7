"""ONE contract suite, run against every external load balancer driver (port.py's promises).

Each driver comes with a harness (harness_<driver>.py) that builds desired load balancers its
product accepts, breaks one behind the driver's back (drift), and asks the product itself what
is left. The suite asserts: ensure twice = no change; member changes land; delete twice
succeeds; drift is repaired on the next ensure; nothing is left after delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness_as3
import harness_haproxy
import harness_octavia
import pytest

from vipcast.core.external import DesiredLB, Member
from vipcast.providers.port import Applied, Retry

HARNESSES = {
    "as3": (harness_as3, harness_as3.AVAILABLE, ""),
    "haproxy": (harness_haproxy, harness_haproxy.AVAILABLE, "no haproxy binary (scripts/setup.sh)"),
    "octavia": (harness_octavia, harness_octavia.AVAILABLE, str(harness_octavia.MISSING)),
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    module, available, why = HARNESSES[request.param]
    if not available:
        pytest.skip(f"{request.param}: {why}")
    if request.param == "octavia":
        request.getfixturevalue("octavia_api")
    loop = asyncio.new_event_loop()
    gen = module.make(tmp_path)
    h = loop.run_until_complete(gen.__anext__())
    h.loop = loop
    try:
        yield h
    finally:
        loop.run_until_complete(gen.aclose())
        loop.close()


def run(h: Any, coro: Any) -> Any:
    return h.loop.run_until_complete(coro)


def members(*ports: int, weight: int = 1) -> list[Member]:
    return [Member("127.0.0.1", p, f"n{p}", weight) for p in ports]


def applied(outcome: object) -> Applied:
    assert isinstance(outcome, Applied), outcome
    return outcome


def observed(h: Any, name: str) -> DesiredLB | None:
    got = run(h, h.driver.get(name))
    assert not isinstance(got, Retry), got
    return got  # type: ignore[no-any-return]


def test_ensure_twice_changes_nothing_the_second_time(harness: Any) -> None:
    lb = harness.desired("web", members(9001, 9002), ports=(80, 443))
    first = applied(run(harness, harness.driver.ensure(lb)))
    assert first.changes > 0
    assert applied(run(harness, harness.driver.ensure(lb))).changes == 0
    assert observed(harness, lb.name) == lb


def test_member_changes_land(harness: Any) -> None:
    lb = harness.desired("web", members(9001, 9002, 9003))
    applied(run(harness, harness.driver.ensure(lb)))
    changed = harness.desired("web", [*members(9001), *members(9003, weight=3),
                                      *members(9004)])
    assert applied(run(harness, harness.driver.update_members(changed))).changes > 0
    assert observed(harness, lb.name) == changed
    assert applied(run(harness, harness.driver.update_members(changed))).changes == 0


def test_delete_twice(harness: Any) -> None:
    lb = harness.desired("web", members(9001, 9002))
    applied(run(harness, harness.driver.ensure(lb)))
    assert applied(run(harness, harness.driver.delete(lb.name))).changes > 0
    assert applied(run(harness, harness.driver.delete(lb.name))).changes == 0
    assert observed(harness, lb.name) is None


def test_drift_is_repaired_on_resync(harness: Any) -> None:
    lb = harness.desired("web", members(9001, 9002, 9003))
    applied(run(harness, harness.driver.ensure(lb)))
    run(harness, harness.drift(lb))
    assert observed(harness, lb.name) != lb, "the harness's drift changed nothing"
    assert applied(run(harness, harness.driver.ensure(lb))).changes > 0
    assert observed(harness, lb.name) == lb


def test_nothing_is_left_after_delete(harness: Any) -> None:
    a = harness.desired("a", members(9001, 9002), vip_octet=11)
    b = harness.desired("b", members(9003, 9004), ports=(80, 8080), vip_octet=12)
    for lb in (a, b):
        applied(run(harness, harness.driver.ensure(lb)))
    assert set(run(harness, harness.driver.names())) == {"a", "b"}
    assert run(harness, harness.leftovers()), "the product shows nothing while LBs exist"
    for lb in (a, b):
        applied(run(harness, harness.driver.delete(lb.name)))
    assert run(harness, harness.driver.names()) == ()
    assert run(harness, harness.leftovers()) == set()
