"""Retry pacing: the one exponential backoff schedule every retry loop uses.

The rule (RFC 4271 §10's jitter, applied to an exponential schedule): attempt ``n`` (from 0)
waits ``min(cap, base * 2**n)`` times a factor drawn uniformly from ``[1 - jitter, 1]``. The
jitter only ever shortens a delay, so ``cap`` is a true upper bound; ``jitter=0.25`` gives
RFC 4271's 75-100 %.

Pure: randomness comes in as a :class:`random.Random` (seeded in tests) or a ``draw`` in
``[0, 1)``; sleeping is the caller's business (runtime/, sources/).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def backoff_delay(attempt: int, base: float, cap: float, jitter: float, draw: float) -> float:
    """The delay before retry ``attempt`` (0 = first retry); ``draw`` is uniform in [0, 1)."""
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be within [0, 1], got {jitter}")
    raw = min(cap, base * float(2 ** min(max(attempt, 0), 62)))
    return raw * (1.0 - jitter * draw)


@dataclass
class Backoff:
    """The schedule of :func:`backoff_delay` with its attempt counter; ``reset`` after a
    success. ``rng`` is the randomness, passed in (seed it in tests)."""

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.25
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        delay = backoff_delay(self.attempts, self.base, self.cap, self.jitter, self.rng.random())
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
