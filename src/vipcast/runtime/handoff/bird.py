"""The BIRD include-file hand-off: a plan consumer that writes the node's handed-off routes as
a BIRD ``protocol static`` file and has BIRD reload it (``birdc configure``).

The shape calico's confd gives its BIRD: a generated file included by the daemon's config and
a soft reconfiguration, which BIRD applies to the changed static protocol alone -- its BGP
sessions stay up. The file is replaced atomically (written beside it, then renamed), so BIRD
never reads half of it. A failed reload is retried on the next plan and every ``retry``
seconds until it succeeds; the text itself comes from :func:`vipcast.core.handoff.bird_include`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from vipcast.core.desired import NodePlan
from vipcast.core.handoff import bird_include, handed_routes

log = logging.getLogger(__name__)
#: BIRD's replies to ``configure`` that mean the new config is (being) taken
_ACCEPTED = ("Reconfigured", "Reconfiguration in progress", "Reconfiguration already in progress")


class BirdReloadError(Exception):
    """``birdc configure`` failed (BIRD not running, or it refused the new config)."""


async def birdc_configure(socket_path: str, *, birdc: str = "birdc", timeout: float = 30.0
                          ) -> str:
    """Run ``birdc -s SOCKET configure``; its output, or BirdReloadError."""
    try:
        proc = await asyncio.create_subprocess_exec(
            birdc, "-s", socket_path, "configure",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    except OSError as exc:
        raise BirdReloadError(f"{birdc}: {exc.strerror}") from exc
    try:
        async with asyncio.timeout(timeout):  # not wait_for: see runtime/envoy/process.py
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BirdReloadError(f"{birdc} configure: no answer in {timeout:g} s") from None
    text = out.decode(errors="replace").strip()
    # birdc exits 0 even when BIRD refuses the config (a syntax error): its reply says so
    accepted = any(reply in text for reply in _ACCEPTED)
    if proc.returncode != 0 or not accepted:
        raise BirdReloadError(f"birdc -s {socket_path} configure: {text or proc.returncode}")
    return text


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename (same directory, fsynced)."""
    tmp = path.with_name(f".{path.name}.vipcast-tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class BirdHandOff:
    """A plan consumer: every ``birdInclude`` hand-off target of the plan gets its file, and
    BIRD reloads it when the text changed."""

    def __init__(self, *, birdc: str = "birdc", retry: float = 2.0) -> None:
        self._birdc = birdc
        self._retry = retry
        #: path -> the text BIRD has loaded (after a successful reload)
        self._loaded: dict[str, str] = {}
        #: path -> (text, control socket) still to be loaded
        self._pending: dict[str, tuple[str, str]] = {}
        self._retrier: asyncio.Task[None] | None = None
        self.reloads = 0
        self.failures = 0
        self._lock = asyncio.Lock()

    async def apply(self, plan: NodePlan) -> None:
        for target in plan.hand_off:
            if target.kind == "birdInclude":
                text = bird_include(plan.node, target, handed_routes(plan, target))
                if self._loaded.get(target.path) != text:
                    self._pending[target.path] = (text, target.control_socket)
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:  # one writer of the files and one birdc at a time
            await self._flush_pending()

    async def _flush_pending(self) -> None:
        for path, (text, control) in list(self._pending.items()):
            try:
                await asyncio.to_thread(write_atomically, Path(path), text)
                await birdc_configure(control, birdc=self._birdc)
            except (OSError, BirdReloadError) as exc:
                if self.failures == 0 or self._retrier is None or self._retrier.done():
                    log.warning("hand-off to BIRD (%s): %s; retrying every %g s", path, exc,
                                self._retry)
                self.failures += 1
                self._schedule_retry()
                continue
            self.reloads += 1
            self._loaded[path] = text
            if self._pending.get(path) == (text, control):
                del self._pending[path]
            log.info("hand-off to BIRD: %s reloaded (%d routes)", path,
                     text.count(" route "))

    def _schedule_retry(self) -> None:
        if self._retrier is None or self._retrier.done():
            self._retrier = asyncio.create_task(self._retry_later(), name="bird-hand-off-retry")

    async def _retry_later(self) -> None:
        """Flush again every ``retry`` seconds until nothing is pending (a new plan in between
        flushes on its own; this loop only covers a BIRD that does not answer)."""
        while self._pending:
            await asyncio.sleep(self._retry)
            await self._flush()

    def status(self) -> list[dict[str, object]]:
        """Each include file: routes BIRD has loaded, whether a newer text waits for a reload,
        and the counts (the agent's /status ``handoff`` section)."""
        paths = sorted(set(self._loaded) | set(self._pending))
        return [{"target": "birdInclude", "path": path,
                 "loaded_routes": self._loaded.get(path, "").count(" route "),
                 "pending": path in self._pending,
                 "control_socket": (self._pending.get(path) or ("", ""))[1] or None,
                 "reloads": self.reloads, "failures": self.failures} for path in paths]

    async def stop(self) -> None:
        if self._retrier is not None:
            self._retrier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrier

