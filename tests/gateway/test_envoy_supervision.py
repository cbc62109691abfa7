"""The node's Envoy is restarted every time it dies, whatever the readiness poller was doing.

The poller (``EnvoyProcess._watch_ready``) asks Envoy's admin listener for ``/ready``; when
Envoy exits, :meth:`EnvoyProcess.run` cancels the poller, waits for it, and restarts Envoy.
On Python 3.11 ``asyncio.wait_for`` drops a cancel that arrives just after its inner call
finished, which it does at once when Envoy is dead (connection refused): the poller went on
polling, ``run`` waited for it forever, and a SIGKILLed Envoy was never restarted (seen under
load in tests/gateway/test_lab_gateway_vip.py: ``restarts`` stayed 0, the process was gone).
The stand-in for Envoy is ``sleep``: these tests are about supervision, not the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

from vipcast.core.backoff import Backoff
from vipcast.runtime.envoy import EnvoyProcess, EnvoySettings


@contextlib.contextmanager
def _closed_port() -> Iterator[int]:
    """A port nobody listens on while the test runs: bound here, never listening (a connection
    to it is refused), so that no other process can take it and answer the poller."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def _process(tmp_path: Path, port: int, poll: float) -> EnvoyProcess:
    binary = tmp_path / "envoy"
    binary.write_text("#!/bin/sh\nexec sleep 300\n")  # ignores Envoy's arguments
    binary.chmod(0o755)
    settings = EnvoySettings(str(binary), tmp_path / "bootstrap.json", port, tmp_path,
                             concurrency=1)
    return EnvoyProcess(settings, poll=poll, backoff=Backoff(base=0.01, cap=0.01))


def test_the_readiness_poller_ends_on_every_cancel(tmp_path: Path) -> None:
    """Cancelled at every point of its cycle against a dead admin port, it always ends."""

    async def main(port: int) -> list[int]:
        survived = []
        for spins in range(12):
            for attempt in range(10):
                poller = asyncio.create_task(_process(tmp_path, port, 0.0)._watch_ready())
                for _ in range(spins):
                    await asyncio.sleep(0)
                poller.cancel()
                done, _ = await asyncio.wait({poller}, timeout=1.0)
                if not done:
                    survived.append(spins * 100 + attempt)
                    for _ in range(1000):  # a survivor survives some cancels: end it anyway
                        poller.cancel()
                        if (await asyncio.wait({poller}, timeout=0.01))[0]:
                            break
        return survived

    with _closed_port() as port:
        assert asyncio.run(main(port)) == []


def test_a_killed_envoy_is_restarted_every_time(tmp_path: Path) -> None:
    async def main(port: int) -> None:
        process = _process(tmp_path, port, poll=0.001)
        runner = asyncio.create_task(process.run())
        killed: list[int] = []
        try:
            for kill in range(20):
                async with asyncio.timeout(30):  # generous: a loaded machine
                    # the next Envoy runs (restarts counts the exits seen so far)
                    while process.pid is None or process.pid in killed:
                        await asyncio.sleep(0.01)
                    assert process.restarts == kill
                    killed.append(process.pid)
                    os.kill(process.pid, signal.SIGKILL)
                    while process.restarts == kill:  # its exit is seen
                        await asyncio.sleep(0.01)
        finally:
            runner.cancel()
            await asyncio.wait({runner}, timeout=10)
            if process._proc is not None and process._proc.returncode is None:
                process._proc.kill()
                await process._proc.wait()

    with _closed_port() as port:
        asyncio.run(main(port))
