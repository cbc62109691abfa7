"""Running commands and processes for the lab: capture, wait, stop by PID.

Everything here is about processes, not networks: :func:`run_command` runs to completion and
raises :class:`LabError` on failure; :class:`Process` is a long-running child in its own
process group, stopped SIGTERM-then-SIGKILL; :func:`wait_until` polls with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class LabError(RuntimeError):
    """A lab command failed (the environment, not the code under test)."""


class ProcessDied(LabError):
    """A process the lab waits on has exited; :func:`wait_until` stops waiting at once."""


def run_command(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 30.0,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion, capturing text output; raise :class:`LabError` on failure."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
            env=dict(env) if env is not None else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout}s: {' '.join(argv)}") from exc
    if check and done.returncode != 0:
        raise LabError(
            f"exit {done.returncode}: {' '.join(argv)}\n{done.stderr.strip()}{done.stdout.strip()}"
        )
    return done


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.2,
    what: str = "condition",
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout`` passes.

    Exceptions from the predicate count as "not yet", except :class:`ProcessDied`, which
    propagates at once. On timeout raise :class:`TimeoutError`
    naming ``what``, the last error and ``on_timeout()`` (for example daemon logs).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except ProcessDied:
            raise
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_error!r}" if last_error else ""
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise TimeoutError(f"{what} not reached within {timeout}s{detail}{extra}")
        time.sleep(interval)


# --------------------------------------------------------------------------- processes


@dataclass
class Process:
    """A process started inside a namespace, leader of its own process group."""

    name: str
    netns: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def log_text(self) -> str:
        """Everything the process wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process group (the process and any children it started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the group, wait up to ``timeout``, then SIGKILL; return the exit code."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        # children of the group that outlived the leader, then the leader itself
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5.0)
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the group at once (a crash, as ``kill -9`` would do)."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5.0)


def kill_pids(pids: Sequence[int]) -> None:
    """SIGKILL the given PIDs (processes found inside one of our own namespaces); wait a bit."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 3.0
    while pids and time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and not _is_zombie(p)]
        if not alive:
            break
        time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


class SingleProcessDaemon:
    """What every one-process lab daemon (BIRD, GoBGP, ExaBGP, an HTTP backend) offers about its
    process."""

    process: Process

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.alive()

    def stop(self) -> None:
        self.process.stop()

    def log_text(self) -> str:
        return self.process.log_text()
