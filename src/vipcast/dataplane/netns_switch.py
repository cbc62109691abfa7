"""Run a block of code with the calling thread inside a named network namespace.

Sockets (netlink, TCP, ...) belong to the namespace they were created in, so a thread can step
into a namespace, create its sockets, and step back. ``setns`` changes only the calling thread;
other threads (and the asyncio loop, when this runs in a worker thread) are not affected.
Python 3.11 has no ``os.setns``, hence the one libc call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"


class NetnsError(OSError):
    """The namespace could not be entered or left."""


@cache
def _libc() -> ctypes.CDLL:
    # find_library runs `ldconfig -p` in a subprocess: once per process, not once per switch
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, os.strerror(err))


@contextmanager
def inside(netns: str | None) -> Iterator[None]:
    """Enter ``netns`` (a name under /run/netns) for the block; ``None`` stays where we are."""
    if netns is None:
        yield
        return
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            target = os.open(os.path.join(NETNS_RUN_DIR, netns), os.O_RDONLY)
        except OSError as exc:
            raise NetnsError(exc.errno, f"network namespace {netns!r}: {exc.strerror}") from exc
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(here)
    finally:
        os.close(here)
