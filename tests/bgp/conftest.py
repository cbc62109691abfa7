"""Fixtures of the BGP runtime, agent and interop tests.

``async def`` tests run on a fresh event loop each (no pytest-asyncio needed); a test that
leaves tasks behind fails.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from typing import Any

import pytest


def _run_checked(coro: Coroutine[Any, Any, Any], timeout: float) -> None:
    async def main() -> None:
        async with asyncio.timeout(timeout):
            await coro
        await asyncio.sleep(0)
        current = asyncio.current_task()
        leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in leaked:
            task.cancel()
        if leaked:
            await asyncio.gather(*leaked, return_exceptions=True)
            raise AssertionError(f"test leaked asyncio tasks: {leaked}")

    asyncio.run(main())


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    marker = pyfuncitem.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else 120.0
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    _run_checked(pyfuncitem.obj(**kwargs), timeout)
    return True
