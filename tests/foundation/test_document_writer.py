"""``vipcast.app.document_writer.write_document``: every piece written, in order, whole.

To a real pipe with a one-page buffer and a slow reader, the writing thread interrupted by a
signal (SIGUSR1, a no-op handler) every millisecond: ``os.writev`` then returns having written
part of what it was given (Linux returns the bytes already copied when a signal arrives), and
the rest must follow before the next batch. To a stream without a descriptor: one write per
group, the group joined."""

from __future__ import annotations

import fcntl
import io
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from vipcast.app import document_writer
from vipcast.app.document_writer import write_document


def _groups(count: int, pieces: int) -> list[list[bytes | memoryview]]:
    """Numbered pieces of varied sizes (some views), so any reordering or loss shows."""
    out: list[list[bytes | memoryview]] = []
    for g in range(count):
        group: list[bytes | memoryview] = []
        for p in range(pieces):
            text = f"<{g}.{p}:" + "x" * ((g * 31 + p * 7) % 300) + ">"
            group.append(memoryview(text.encode())[:] if p % 3 == 0 else text.encode())
        out.append(group)
    return out


def _joined(groups: Sequence[Sequence[bytes | memoryview]]) -> bytes:
    return b"".join(bytes(p) for g in groups for p in g)


def test_short_writes_to_a_small_pipe_are_completed_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    groups = _groups(40, 150)  # ~0.9 MB through a 4 KiB pipe
    want = _joined(groups)
    monkeypatch.setattr(document_writer, "WRITEV_BATCH", 64)  # several batches per group
    real = os.writev
    short: list[tuple[int, int]] = []

    def counted(fd: int, buffers: Sequence[bytes | memoryview]) -> int:
        done = real(fd, buffers)
        asked = sum(len(b) for b in buffers)
        if done < asked:
            short.append((done, asked))
        return done

    monkeypatch.setattr(os, "writev", counted)  # the module writes through os.writev
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)
    got = bytearray()

    def reader() -> None:  # slow: the writer blocks with part of a batch written
        while chunk := os.read(read_fd, 1024):
            got.extend(chunk)
            time.sleep(0.0002)

    writing = threading.Event()
    writer_thread = threading.get_ident()

    def interrupter() -> None:  # a signal to the writing thread every millisecond
        while writing.is_set():
            signal.pthread_kill(writer_thread, signal.SIGUSR1)
            time.sleep(0.001)

    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    threads = [threading.Thread(target=reader, daemon=True),
               threading.Thread(target=interrupter, daemon=True)]
    writing.set()
    for thread in threads:
        thread.start()
    try:
        with open(write_fd, "wb", closefd=True) as out:
            out.write(b"head:")  # written before the document: flushed first
            write_document(groups, out)
    finally:
        writing.clear()
        for thread in threads:
            thread.join(timeout=120)
        signal.signal(signal.SIGUSR1, previous)
        os.close(read_fd)
    assert not any(thread.is_alive() for thread in threads)
    assert bytes(got) == b"head:" + want
    assert short, "no write was cut short: the test did not exercise the completion"
    assert all(0 < done < asked for done, asked in short)


def test_batches_of_the_iov_limit_keep_the_order(
        monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    groups = _groups(5, 23)
    monkeypatch.setattr(document_writer, "WRITEV_BATCH", 4)
    calls: list[int] = []
    real = os.writev

    def counted(fd: int, buffers: Sequence[bytes | memoryview]) -> int:
        calls.append(len(buffers))
        return real(fd, buffers)

    monkeypatch.setattr(os, "writev", counted)  # the module writes through os.writev
    read_fd, write_fd = os.pipe()
    with open(write_fd, "wb") as out:
        write_document(groups[:1], out)  # 23 pieces: well under the pipe's buffer
    with open(read_fd, "rb") as back:
        assert back.read() == _joined(groups[:1])
    assert calls == [4, 4, 4, 4, 4, 3]
    assert document_writer.WRITEV_BATCH == 4 and os.sysconf("SC_IOV_MAX") >= 16


def test_without_a_descriptor_each_group_is_joined_and_written_once() -> None:
    class Recording(io.BytesIO):
        def __init__(self) -> None:
            super().__init__()
            self.writes: list[bytes] = []

        def fileno(self) -> int:
            raise io.UnsupportedOperation("no descriptor")

        def write(self, data: object) -> int:
            assert isinstance(data, bytes)
            self.writes.append(data)
            return super().write(data)

    groups = _groups(6, 9)
    out = Recording()
    made: list[int] = []

    def lazily() -> Iterator[list[bytes | memoryview]]:  # made while writing, as the CLI's
        for number, group in enumerate(groups):
            made.append(number)
            assert len(out.writes) == number  # the groups before it are written already
            yield group

    spent = write_document(lazily(), out)
    assert out.writes == [b"".join(bytes(p) for p in g) for g in groups]
    assert out.getvalue() == _joined(groups) and made == list(range(6)) and spent >= 0
