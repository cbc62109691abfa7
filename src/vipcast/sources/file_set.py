"""Which object files a config is, and what identifies each one's content: the light part of
:mod:`vipcast.sources.files` (no YAML, no object model), which the agent's start from its
start cache (:mod:`vipcast.app.start_early`) needs before anything else is imported."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from vipcast.spec.errors import Issue

YAML_SUFFIXES = (".yaml", ".yml", ".json")

#: (mtime_ns, size, inode) of one file: a different key means "read it again"
Stamp = tuple[int, int, int]


def config_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Issue]]:
    """The object files under ``paths`` (files, or directories walked recursively, sorted)."""
    files: list[Path] = []
    issues: list[Issue] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(
                p for p in path.rglob("*")
                if p.suffix in YAML_SUFFIXES and not p.name.startswith(".") and p.is_file()
            ))
        elif path.is_file():
            files.append(path)
        else:
            issues.append(Issue(str(path), "", "", "", "no such file or directory"))
    return files, issues


def stamp_of(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def text_of(data: bytes) -> str:
    """A file's text as the object files are read: UTF-8 (raises UnicodeDecodeError), line
    breaks as text mode reads them (universal newlines)."""
    text = data.decode()
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def content_key(path: str, data: bytes) -> str:
    """The key of one file's content at ``path`` (the per-file cache's and the start cache's)."""
    return hashlib.sha256(path.encode() + b"\0" + data).hexdigest()
