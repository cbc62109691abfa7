"""How many worker threads the node's Envoy gets: the CPUs the process may use (affinity),
capped by a cgroup CPU quota (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), on the cgroup or any
parent; explicit ``--concurrency`` wins. Cgroup trees are written as files in a temporary
folder laid out as /sys/fs/cgroup is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vipcast.runtime.envoy import EnvoyProcess, EnvoySettings, cpu_budget
from vipcast.runtime.envoy.process import cgroup_cpu_limit, quota_cpus


@pytest.mark.parametrize(("text", "period", "cpus"), [
    ("max 100000\n", None, None),
    ("150000 100000\n", None, 1.5),
    ("50000 100000", None, 0.5),
    ("garbage", None, None),
    ("-1\n", "100000\n", None),          # v1: no quota
    ("200000\n", "100000\n", 2.0),      # v1: two CPUs
])
def test_quota_text(text: str, period: str | None, cpus: float | None) -> None:
    assert quota_cpus(text, period) == cpus


def test_v2_quota_on_a_parent_cgroup_counts(tmp_path: Path) -> None:
    pod = tmp_path / "kubepods" / "pod1"
    (pod / "ctr").mkdir(parents=True)
    (tmp_path / "kubepods" / "cpu.max").write_text("max 100000\n")
    (pod / "cpu.max").write_text("250000 100000\n")
    (pod / "ctr" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit("0::/kubepods/pod1/ctr\n", tmp_path) == 2.5


def test_v1_cpu_hierarchy(tmp_path: Path) -> None:
    ctr = tmp_path / "cpu,cpuacct" / "docker" / "abc"
    ctr.mkdir(parents=True)
    (ctr / "cpu.cfs_quota_us").write_text("100000\n")
    (ctr / "cpu.cfs_period_us").write_text("100000\n")
    proc = "5:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n"
    assert cgroup_cpu_limit(proc, tmp_path) == 1.0


def test_no_quota_anywhere(tmp_path: Path) -> None:
    assert cgroup_cpu_limit("0::/\n1:cpu:/\n", tmp_path) is None


def test_budget_is_the_affinity_set_here() -> None:
    # whatever this machine's cgroup says, the budget never exceeds the CPUs we may run on
    assert 1 <= cpu_budget() <= len(os.sched_getaffinity(0))


def test_budget_capped_by_quota_rounded_up(tmp_path: Path) -> None:
    # a tree where the cgroup named by /proc/self/cgroup (v2 line) has a 0.5-CPU quota
    line = next((x for x in Path("/proc/self/cgroup").read_text().splitlines()
                 if x.startswith("0::")), None)
    if line is None:
        pytest.skip("this kernel lists no cgroup v2 line in /proc/self/cgroup")
    here = tmp_path / line[3:].strip("/")
    here.mkdir(parents=True, exist_ok=True)
    (here / "cpu.max").write_text("50000 100000\n")
    assert cpu_budget(tmp_path) == 1


def _argv(concurrency: int | None) -> list[str]:
    proc = EnvoyProcess(EnvoySettings("envoy", Path("/b.json"), 19000, Path("/w"),
                                      concurrency=concurrency))
    return proc.argv()


def test_argv_workers() -> None:
    auto = _argv(None)
    assert auto[auto.index("--concurrency") + 1] == str(cpu_budget())
    fixed = _argv(3)
    assert fixed[fixed.index("--concurrency") + 1] == "3"
