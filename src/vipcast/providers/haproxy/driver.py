"""The HAProxy appliance driver: one master-worker HAProxy carries every VIP of the provider.

State lives in the provider's directory: ``haproxy.cfg`` (rendered), ``desired.json`` (what was
applied), the master CLI ``master.sock`` and the admin socket ``admin.sock``. A change of the
frontends (a VIP, a port, a monitor, an ACL) rewrites the configuration, checks it with
``haproxy -c`` and reloads hitlessly (the master re-executes with ``-sf`` and passes the listening
sockets over ``expose-fd listeners``), then re-applies the runtime state. A change of members
only goes through the runtime API (``add server`` / ``set weight`` / drain / ``del server``),
with no reload.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from vipcast.core.external import (
    Capabilities,
    DesiredLB,
    Listener,
    Member,
    lb_from_data,
    lb_to_data,
)
from vipcast.providers.haproxy import runtime
from vipcast.providers.haproxy.config import backend_name, render, server_args, server_name
from vipcast.providers.port import Applied, Failure, Outcome, Retry

CAPABILITIES = Capabilities("haproxy", frozenset({"TCP"}), proxy_protocol=True,
                            forwarded_for=True, source_ranges=True)


class _BadState(ValueError):
    """The appliance's state file cannot be read back (edited or truncated by hand)."""


class HAProxyDriver:
    """Drives one HAProxy (started on first ensure) through its files and sockets."""

    def __init__(self, state_dir: str | Path, *, launcher: Sequence[str] = (),
                 haproxy: str = "haproxy", drain_timeout: float = 5.0) -> None:
        self.dir = Path(state_dir)
        self.launcher = tuple(launcher)
        self.haproxy = haproxy
        self.drain_timeout = drain_timeout
        self.config = self.dir / "haproxy.cfg"
        self.admin = str(self.dir / "admin.sock")
        self.master = str(self.dir / "master.sock")
        self.pidfile = self.dir / "haproxy.pid"
        self.state = self.dir / "desired.json"
        #: reloads this driver asked for (HAProxy's own count: ``show proc`` on the master)
        self.reloads = 0

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    # ------------------------------------------------------------ state

    def _load(self) -> dict[str, DesiredLB]:
        try:
            text = self.state.read_text()
        except FileNotFoundError:
            return {}
        try:
            return {d["name"]: lb_from_data(d) for d in json.loads(text)}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _BadState(f"{self.state} is not vipcast's state file ({exc!r}); move it "
                            "aside to start again from the Services") from exc

    def _save(self, lbs: dict[str, DesiredLB]) -> None:
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps([lb_to_data(lbs[n]) for n in sorted(lbs)], indent=1))
        tmp.replace(self.state)

    async def _write_config(self, lbs: dict[str, DesiredLB]) -> Retry | None:
        text = render(lbs.values(), self.admin, str(self.pidfile))
        candidate = self.config.with_suffix(".new")
        candidate.write_text(text)
        proc = await asyncio.create_subprocess_exec(
            self.haproxy, "-c", "-f", str(candidate),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            return Retry(Failure.REFUSED, f"haproxy -c refused the configuration: "
                         f"{out.decode(errors='replace').strip()[-500:]}", 60.0)
        candidate.replace(self.config)
        return None

    # ------------------------------------------------------------ process

    async def running(self) -> bool:
        try:
            await runtime.command(self.admin, "show info", timeout=2.0)
        except runtime.RuntimeError_:
            return False
        return True

    async def _worker_pid(self) -> str | None:
        try:
            info = await runtime.command(self.admin, "show info", timeout=2.0)
        except runtime.RuntimeError_:
            return None
        return next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                     if ln.startswith("Pid:")), None)

    async def _wait_worker(self, old: str | None, deadline: float = 15.0) -> Retry | None:
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while loop.time() < end:
            pid = await self._worker_pid()
            if pid is not None and pid != old:
                return None
            await asyncio.sleep(0.05)
        return Retry(Failure.NOT_READY, "HAProxy's new worker did not answer on "
                     f"{self.admin} within {deadline:.0f} s", 5.0)

    async def _start(self) -> Retry | None:
        for sock in (self.admin, self.master):
            Path(sock).unlink(missing_ok=True)
        proc = await asyncio.create_subprocess_exec(
            *self.launcher, self.haproxy, "-W", "-D", "-S", f"{self.master},mode,600",
            "-f", str(self.config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()  # -D: returns once the master has daemonised
        if proc.returncode != 0:
            return Retry(Failure.UNREACHABLE, f"haproxy did not start: {err.decode()[-400:]}",
                         10.0)
        return await self._wait_worker(None)

    async def _reload(self) -> Retry | None:
        old = await self._worker_pid()
        for attempt in range(40):  # the master's CLI may answer a moment after the worker
            try:
                await runtime.command(self.master, "reload; quit", timeout=5.0)
                break
            except runtime.RuntimeError_ as exc:
                if attempt == 39:
                    return Retry(Failure.UNREACHABLE, f"HAProxy master CLI: {exc}", 5.0)
                await asyncio.sleep(0.05)
        self.reloads += 1
        return await self._wait_worker(old)

    async def stop(self) -> None:
        """Stop HAProxy (master and workers) by the master's PID, and wait until it is gone."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            await asyncio.sleep(0.025)
        os.kill(pid, signal.SIGKILL)

    # ------------------------------------------------------------ members (runtime API)

    async def _cmd(self, line: str) -> str:
        return (await runtime.command(self.admin, line)).strip()

    async def _drain_and_delete(self, backend: str, name: str) -> bool:
        ref = f"{backend}/{name}"
        await self._cmd(f"set server {ref} state drain")
        loop = asyncio.get_running_loop()
        end = loop.time() + self.drain_timeout
        while loop.time() < end:
            if await runtime.current_sessions(self.admin, backend, name) == 0:
                break
            await asyncio.sleep(0.05)
        await self._cmd(f"set server {ref} state maint")
        answer = await self._cmd(f"del server {ref}")
        return answer.startswith("Server deleted")

    async def _add(self, backend: str, listener: Listener, member: Member) -> str | None:
        ref = f"{backend}/{server_name(member)}"
        answer = await self._cmd(f"add server {ref} {server_args(listener, member)}")
        if not answer.startswith("New server registered"):
            return f"add server {ref}: {answer}"
        await self._cmd(f"enable health {ref}")
        await self._cmd(f"enable server {ref}")
        return None

    async def _sync_members(self, lb: DesiredLB) -> int | Retry:
        states = await runtime.servers(self.admin)
        changes = 0
        for listener in lb.listeners:
            backend = backend_name(lb, listener)
            have = {s.name: s for s in states if s.backend == backend}
            want = {server_name(m): m for m in listener.members}
            for name, member in want.items():
                current = have.get(name)
                if current is None:
                    problem = await self._add(backend, listener, member)
                    if problem:
                        return Retry(Failure.REFUSED, problem, 30.0)
                    changes += 1
                    continue
                if current.weight != member.weight:
                    await self._cmd(f"set weight {backend}/{name} {member.weight}")
                    changes += 1
                if current.admin & 0x09:  # maintenance or drain left by someone: serve again
                    await self._cmd(f"set server {backend}/{name} state ready")
                    changes += 1
            for name in sorted(set(have) - set(want)):
                if await self._drain_and_delete(backend, name):
                    changes += 1
                else:
                    return Retry(Failure.BUSY, f"{backend}/{name} still has connections; "
                                 "it is in maintenance and is deleted on the next pass", 2.0)
        return changes

    # ------------------------------------------------------------ the port

    async def get(self, name: str) -> DesiredLB | Retry | None:
        try:
            lb = self._load().get(name)
        except (OSError, _BadState) as exc:
            return self._local_failure(exc)
        if lb is None:
            return None
        try:
            states = await runtime.servers(self.admin)
        except runtime.RuntimeError_ as exc:
            return Retry(Failure.UNREACHABLE, str(exc), 5.0)
        listeners = []
        for listener in lb.listeners:
            backend = backend_name(lb, listener)
            members = tuple(sorted(
                Member(s.address, s.port, _node_of(listener, s.name), s.weight)
                for s in states if s.backend == backend and not s.admin & 0x09))
            listeners.append(replace(listener, members=members))
        return replace(lb, listeners=tuple(listeners))

    def _local_failure(self, exc: Exception) -> Retry:
        """The appliance's own files or binary failed us (never an exception out of here)."""
        if isinstance(exc, FileNotFoundError) and exc.filename == self.haproxy:
            return Retry(Failure.REFUSED, f"no haproxy binary {self.haproxy!r} on the "
                         "appliance", 300.0)
        if isinstance(exc, OSError):
            return Retry(Failure.REFUSED, f"HAProxy state directory {self.dir}: "
                         f"{exc.strerror or exc} ({exc.filename or self.dir})", 60.0)
        return Retry(Failure.REFUSED, str(exc), 300.0)

    async def ensure(self, desired: DesiredLB) -> Outcome:
        try:
            return await self._ensure(desired)
        except (OSError, _BadState) as exc:
            return self._local_failure(exc)

    async def _ensure(self, desired: DesiredLB) -> Outcome:
        self.dir.mkdir(parents=True, exist_ok=True)
        lbs = self._load()
        before = lbs.get(desired.name)
        lbs[desired.name] = desired
        changes = 0
        try:
            if not await self.running():
                if problem := await self._write_config(lbs) or await self._start():
                    return problem
                changes += 1
            elif before is None or not before.members_only_differ(desired):
                if problem := await self._write_config(lbs) or await self._reload():
                    return problem
                changes += 1
            synced = await self._sync_members(desired)
        except runtime.RuntimeError_ as exc:
            return Retry(Failure.UNREACHABLE, str(exc), 5.0)
        if isinstance(synced, Retry):
            self._save(lbs)
            return synced
        self._save(lbs)
        return Applied(desired.name, desired.vip, changes + synced, desired.ip_mode)

    async def update_members(self, desired: DesiredLB) -> Outcome:
        return await self.ensure(desired)

    async def delete(self, name: str) -> Outcome:
        try:
            return await self._delete(name)
        except (OSError, _BadState) as exc:
            return self._local_failure(exc)

    async def _delete(self, name: str) -> Outcome:
        lbs = self._load()
        if name not in lbs:
            return Applied(name, None, 0)
        gone = lbs.pop(name)
        if await self.running() and (
            problem := await self._write_config(lbs) or await self._reload()
        ):
            return problem
        self._save(lbs)
        return Applied(name, gone.vip, 1)

    async def names(self) -> tuple[str, ...] | Retry:
        try:
            return tuple(sorted(self._load()))
        except (OSError, _BadState) as exc:
            return self._local_failure(exc)

    async def proxies(self) -> set[str]:
        """Every frontend/backend the running HAProxy has (``show stat``): what is really there."""
        text = await runtime.command(self.admin, "show stat")
        return {line.split(",", 1)[0] for line in text.splitlines()[1:] if line}


def _node_of(listener: Listener, server: str) -> str:
    return next((m.node for m in listener.members if server_name(m) == server), "")
