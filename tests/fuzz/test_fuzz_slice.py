"""A short fixed-seed slice of every fuzz target, under atheris, as a normal test.

``bench/fuzz.py`` is the runner; here each target gets a few thousand inputs (seed 1, the FRR
corpus left out of the seeds: ``tests/bgp/test_frr_corpus.py`` covers it). A second test makes
a target crash on purpose and checks that the runner reports it and keeps the reproducer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "fuzz.py"
RUNS = 1000


def fuzz(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(RUNNER),
            "--seed",
            "1",
            "--no-coverage",
            "--crashes",
            str(tmp_path / "crashes"),
            "--json",
            str(tmp_path / "out.json"),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "VIPCAST_FUZZ_FRR_SEEDS": "0", **(env or {})},
        check=False,
        timeout=240,
    )


@pytest.mark.timeout(300)
def test_every_target_survives_a_fixed_seed_slice(tmp_path: Path) -> None:
    proc = fuzz(tmp_path, "--runs", str(RUNS))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["summary"]["crashes"] == 0
    results = doc["targets"]
    assert set(results) == {
        "bgp_message",
        "bgp_update",
        "bgp_open",
        "bgp_session",
        "bfd_packet",
        "l2_frame",
        "membership_heartbeat",
    }
    for name, result in results.items():
        assert result["runs"] >= RUNS, (name, result)
        assert result["crashes"] == [], (name, result)
        assert result["libfuzzer_edges"] > 0, name


@pytest.mark.timeout(120)
def test_a_crash_is_reported_with_its_reproducer(tmp_path: Path) -> None:
    proc = fuzz(
        tmp_path, "--runs", "500", "--targets", "bgp_message", env={"VIPCAST_FUZZ_PLANTED_BUG": "1"}
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    result = json.loads((tmp_path / "out.json").read_text())["targets"]["bgp_message"]
    assert len(result["crashes"]) == 1
    reproducer = Path(result["crashes"][0]).read_bytes()
    assert b"\xff" * 16 + b"\x00\x13\x04" in reproducer
    assert "planted bug" in result["log_tail"]
