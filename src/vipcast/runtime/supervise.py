"""Task supervision: restart on crash, paced by :class:`vipcast.core.backoff.Backoff`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from vipcast.core.backoff import Backoff


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
