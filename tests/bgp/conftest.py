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


# --------------------------------------------------------------------------- interop harness

import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

ROUTER_V4, ROUTER_V6 = "192.0.2.1", "2001:db8::1"
NODE_V4, NODE_V6 = "192.0.2.11", "2001:db8::11"


@dataclass
class StaticSpeaker:
    """``python -m vipcast.app.bgp_static`` inside a namespace, driven by JSON lines."""

    popen: subprocess.Popen[str]
    out_path: Path
    log_path: Path
    peers: list[dict[str, object]] = field(default_factory=list)

    def send(self, doc: dict[str, object]) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(doc) + "\n")
        self.popen.stdin.flush()

    def configure(self, peers: list[dict[str, object]], routes: dict[str, object]) -> None:
        self.peers = peers
        self.send({"routes": routes, "peers": peers})

    def status(self) -> dict[str, dict[str, object]]:
        lines = [ln for ln in self.out_path.read_text().splitlines() if ln.startswith("{")]
        if not lines:
            return {}
        return {str(p["name"]): p for p in json.loads(lines[-1])["peers"]}

    def state(self, peer: str) -> str | None:
        entry = self.status().get(peer)
        return None if entry is None else str(entry["state"])

    def wait(self, predicate: object, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"bgp_static exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if predicate(self.status()):  # type: ignore[operator]
                    return
            except (KeyError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"{what} not reached in {timeout}s; status {self.status()}")

    def expect_hold_expiry(self, peer: str, daemon: Any) -> None:
        """Freeze the peer's daemon process (SIGSTOP): this speaker's hold timer expires and it
        sends NOTIFICATION 4 (Hold Timer Expired). The daemon is resumed in any case."""
        daemon.signal(signal.SIGSTOP)
        try:
            self.wait(
                lambda s: (
                    s[peer]["state"] != "Established"
                    and "hold" in str(s[peer]["last_error"]).lower()
                ),
                30,
                "hold timer expiry",
            )
            assert int(self.status()[peer]["notifications_sent"]) >= 1
        finally:
            daemon.signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                self.send({"stop": True})
                self.popen.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait(10)


def spawn_static(
    registry: list[StaticSpeaker],
    exec_argv: list[str],
    workdir: Path,
    name: str = "node",
    listen: list[tuple[str, int]] | None = None,
) -> StaticSpeaker:
    """``exec_argv`` is ``Netns.exec_argv([])`` (the ``ip netns exec NS`` prefix)."""
    out_path = workdir / f"{name}-static.out"
    log_path = workdir / f"{name}-static.log"
    with out_path.open("w") as out, log_path.open("w") as log:
        popen = subprocess.Popen(
            [*exec_argv, sys.executable, "-m", "vipcast.app.bgp_static"],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    speaker = StaticSpeaker(popen, out_path, log_path)
    registry.append(speaker)
    if listen:
        speaker.send({"listen": [list(item) for item in listen]})
    return speaker


@pytest.fixture
def static_speaker() -> Iterator[Callable[..., StaticSpeaker]]:
    """A factory ``(netns, workdir, name="node", listen=None) -> StaticSpeaker``; every speaker
    it started is killed afterwards (by PID)."""
    started: list[StaticSpeaker] = []

    def start(
        netns: Any, workdir: Path, name: str = "node", listen: list[tuple[str, int]] | None = None
    ) -> StaticSpeaker:
        return spawn_static(started, netns.exec_argv([]), workdir, name, listen)

    yield start
    for speaker in started:
        speaker.kill()
        if speaker.popen.stdin is not None:
            speaker.popen.stdin.close()
