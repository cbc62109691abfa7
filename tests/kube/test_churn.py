"""kill -9 churn (small): two controller processes, the Lease holder is killed at random
moments while Services are created and replaced. No address is ever held by two Services (as
seen by a watch of every status change), none moves, every live Service ends up with one.
The issue's scale (100 kills, 1,000 services) is ``bench/kube_churn.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .churn import ChurnPlan, run_churn
from .conftest import run
from .harness.cluster import Cluster

pytestmark = pytest.mark.slow


def test_kill9_leader_churn(vipcast_crds: Cluster, namespace: str, tmp_path: Path) -> None:
    plan = ChurnPlan(kills=8, services=40, replacements=10, cidr="198.18.0.0/26",
                     lease_duration=1.0, kill_gap=(0.1, 1.0))
    try:
        figures = run(run_churn(vipcast_crds, namespace, tmp_path, plan), 240)
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    print(figures.line())
    assert figures.kills == plan.kills
    assert not figures.violations, figures.violations
    assert figures.moves == 0 and figures.double_assignments == 0
    assert figures.live == plan.services
    assert figures.assigned == figures.live
