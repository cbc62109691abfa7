"""``vipcast lab up`` (twice), ``lab status`` and ``lab down`` through the CLI, as a user runs them.

Up twice must end with one lab (the second up removes the first); down must leave no
namespace, no process and no work directory behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from vipcast.lab.netns import delete_prefixed, leftovers, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

if os.geteuid() != 0:  # pragma: no cover
    pytest.skip("the lab needs root", allow_module_level=True)


def vipcast(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vipcast.cli.main", *args],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "COLUMNS": "200"})


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie is gone already


def test_lab_up_twice_status_then_down_leaves_nothing() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="vc-e2e-cli-")) / "lab"
    prefix = f"vc-{os.getpid()}-cli"
    common = ["--workdir", str(workdir)]
    pids: set[int] = set()
    try:
        for _ in range(2):
            up = vipcast("lab", "up", "--nodes", "2", "--router", "bird", "--prefix", prefix,
                         *common)
            assert up.returncode == 0, up.stdout + up.stderr
            state = json.loads((workdir / "lab-state.json").read_text())
            pids |= set(state["pids"].values())
            assert len(leftovers(prefix)) == 5  # router, lan, client, n1, n2
        first_pids = pids - set(state["pids"].values())
        assert first_pids and not any(alive(p) for p in first_pids), "first lab still running"

        # 'lab up' returns once the BGP sessions are Established; the routes reach the
        # router's kernel after that (UPDATE, BIRD's import and export): wait for what is read
        seen: list[subprocess.CompletedProcess[str]] = []

        def status_with_routes() -> bool:
            seen.append(vipcast("lab", "status", *common))
            return seen[-1].returncode == 0 and "nexthop via 198.18.0.11" in seen[-1].stdout

        wait_until(status_with_routes, timeout=60, interval=0.5,
                   what="'lab status' showing the router's ECMP route via n1",
                   on_timeout=lambda: seen[-1].stdout + seen[-1].stderr if seen else "")
        st = seen[-1]
        assert st.returncode == 0, st.stdout + st.stderr
        assert "n2-agent" in st.stdout and "router-bird" in st.stdout
        assert "nexthop via 198.18.0.11" in st.stdout, st.stdout

        down = vipcast("lab", "down", *common)
        assert down.returncode == 0, down.stdout + down.stderr
        assert leftovers(prefix) == []
        assert not any(alive(p) for p in pids)
        assert not workdir.exists()
        assert vipcast("lab", "status", *common).returncode == 1
    finally:
        delete_prefixed(prefix)
        subprocess.run(["rm", "-rf", str(workdir.parent)], check=False)


# the demo's own bound (communicate, 360 s) decides, not pytest-timeout's suite default (300 s)
@pytest.mark.timeout(480)
def test_demo_runs_in_about_a_minute_and_leaves_only_its_picture(tmp_path: Path) -> None:
    picture = tmp_path / "failover.svg"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vipcast.cli.main", "demo", "--picture", str(picture)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        # about 70 s alone (weights, a drain under load, failover, L7): generous on a busy box
        out, err = proc.communicate(timeout=360)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        delete_prefixed(f"vc-{proc.pid}-")
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    for heading in ("allocations", "BGP sessions", "ECMP", "client requests", "failover"):
        assert heading in out, out
    assert "recovered after" in out and "did not recover" not in out, out
    # weighted ECMP: the router's weights follow the pods per node (1, 2, 3)
    assert "weighted ECMP to" in out and "router weight" in out, out
    weights = [int(w) for _, w in sorted(re.findall(r"│ (198\.18\.0\.1\d) +│ (\d+) +│", out))]
    assert len(weights) == 3 and weights[0] < weights[1] < weights[2], out
    # the drain under load: zero failed requests, the node's route withdrawn
    assert "6. drain" in out and " 0 failed of " in out and "not within the run" not in out, out
    assert "Drain of n1: 0 failed" in picture.read_text()
    # the L7 part: routing, the split, the client the backends saw, scaling with no failure
    assert "L7 gateway" in out and "203.0.113.10" in out, out
    assert "times under load: 0 failed" in out, out
    assert picture.exists() and "<svg" in picture.read_text()
    assert "Through the L7 gateway" in picture.read_text()
    assert leftovers(f"vc-{proc.pid}-") == []
    assert not Path(f"/tmp/vipcast-demo-{proc.pid}").exists()
