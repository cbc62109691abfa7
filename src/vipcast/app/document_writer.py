"""A large document written to a stream from its pieces, in order, without joining it first.

``vipcast plan --json`` on 10,000 Services makes a document of some 440 MB as groups of
buffers (:func:`vipcast.core.plan_document.plan_json_pieces`). To a file descriptor (a file,
a pipe, a terminal, /dev/null) :func:`write_document` hands many pieces to one ``os.writev``
call, so the kernel copies each once; a stream without a descriptor (stdout replaced, as
under ``typer.testing.CliRunner``) gets each group joined and written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import BinaryIO

from vipcast.core.plan_document import Piece

#: buffers one ``os.writev`` call takes at most (the system's IOV_MAX)
WRITEV_BATCH = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024


def write_document(groups: Iterable[Sequence[Piece]], out: BinaryIO) -> float:
    """Write every piece of ``groups`` to ``out``, in order; the seconds spent writing (the
    time to make the next group is not counted).

    ``out`` is flushed first, so what was written to it before goes first. A write cut short
    (a signal while writing to a pipe) is completed before the next one."""
    out.flush()
    try:
        fd: int | None = out.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation: no descriptor behind it
        fd = None
    spent = 0.0
    for group in groups:
        start = time.perf_counter()
        if fd is None:
            out.write(b"".join(group))
        else:
            _writev_all(fd, group)
        spent += time.perf_counter() - start
    return spent


def _writev_all(fd: int, group: Sequence[Piece]) -> None:
    """All of ``group`` to ``fd``, :data:`WRITEV_BATCH` pieces per ``os.writev``."""
    for at in range(0, len(group), WRITEV_BATCH):
        batch = group[at:at + WRITEV_BATCH]
        done = os.writev(fd, batch)
        if done < sum(map(len, batch)):  # cut short (a signal): the rest as one piece
            rest = memoryview(b"".join(batch))[done:]
            while rest:
                rest = rest[os.write(fd, rest):]
