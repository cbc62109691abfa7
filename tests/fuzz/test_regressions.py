"""Every fuzz reproducer kept in ``tests/bgp/vectors/fuzz_regressions.json`` (and
``tests/l2/vectors``-style files, if any appear) runs through its target without a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from targets import TARGETS

VECTOR_FILES = [Path(__file__).resolve().parents[1] / "bgp" / "vectors" / "fuzz_regressions.json"]
REPRODUCERS = {
    name: vector
    for path in VECTOR_FILES
    for name, vector in json.loads(path.read_text()).items()
    if isinstance(vector, dict) and "target" in vector
}


def test_there_are_reproducers() -> None:
    assert REPRODUCERS


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_reproducer_no_longer_crashes_its_target(name: str) -> None:
    vector = REPRODUCERS[name]
    TARGETS[vector["target"]].run(bytes.fromhex(vector["hex"]))
