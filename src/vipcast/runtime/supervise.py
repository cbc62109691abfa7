"""Retry pacing and task supervision: exponential backoff with jitter, restart on crash.

Randomness is injected (a :class:`random.Random`), so tests can pin the delays.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Exponential backoff with jitter: ``base * 2**n`` capped at ``cap``, times [1-j, 1].

    ``jitter`` is the fraction removed at random (RFC 4271 §10 suggests 0.75..1.0 of the
    timer, i.e. ``jitter=0.25``).
    """

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.25
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        raw = min(self.cap, self.base * float(2 ** min(self.attempts, 30)))
        self.attempts += 1
        return raw * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        self.attempts = 0


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    backoff: Backoff,
    log: logging.Logger,
    healthy_after: float = 30.0,
) -> None:
    """Run ``run()`` forever: when it raises (a bug or a lost resource), log and restart.

    A run that lasted ``healthy_after`` seconds resets the backoff. Cancellation stops it.
    Returning normally ends supervision.
    """
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            if loop.time() - started >= healthy_after:
                backoff.reset()
            delay = backoff.next_delay()
            log.exception("%s crashed; restarting in %.1fs", name, delay)
            await asyncio.sleep(delay)
