"""Fixtures of the BFD tests: loopback addresses unlikely to collide with parallel runs."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator

import pytest
from bfdlab import BfdThread


@pytest.fixture
def loopback_pair() -> tuple[str, str]:
    """Two addresses in 127.0.0.0/8 picked from this process's PID and a random draw."""
    rng = random.Random(os.getpid() ^ random.getrandbits(32))
    b, c = rng.randrange(1, 255), rng.randrange(1, 254)
    return f"127.{b}.{c}.1", f"127.{b}.{c}.2"


@pytest.fixture
def bfd_thread_factory() -> Iterator[Callable[[str | None], BfdThread]]:
    made: list[BfdThread] = []

    def make(netns: str | None) -> BfdThread:
        t = BfdThread(netns)
        made.append(t)
        return t

    try:
        yield make
    finally:
        for t in made:
            t.close()
