"""A client-side write limit: a token bucket (``qps`` tokens a second, up to ``burst``).

The controller takes one token before each Service status write, as client-go's ``--kube-api-qps``
/ ``--kube-api-burst`` do for a controller's requests, so a cold start over tens of thousands of
Services cannot flood the API server (whose priority-and-fairness would otherwise queue or 429
them, and slow every other client too). Reads, watches and the Lease renewals are not limited:
a leader that cannot renew because its own writes queued ahead would lose the Lease.

Waiters reserve their slot when they ask, so concurrent writers are served in order and the
rate holds over any window. ``qps <= 0`` means no limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    qps: float
    burst: int = 1
    clock: Callable[[], float] = time.monotonic
    #: tokens taken so far (for /status and the bench)
    taken: int = 0
    #: seconds spent waiting for tokens, summed over all takers
    waited: float = 0.0
    _tokens: float = field(default=-1.0, repr=False)
    _stamp: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, not {self.burst}")
        self._tokens = float(self.burst)
        self._stamp = self.clock()

    def reserve(self) -> float:
        """Take one token now; answer how long the caller must wait before using it."""
        self.taken += 1
        if self.qps <= 0:
            return 0.0
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now
        self._tokens -= 1.0  # may go negative: the debt is the queue ahead of later callers
        wait = max(0.0, -self._tokens / self.qps)
        self.waited += wait
        return wait

    async def take(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
