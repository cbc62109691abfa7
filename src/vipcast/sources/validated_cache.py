"""A cache on disk of validated object files, so a restart need not parse them again.

Parsing and validating 10,000 Services takes seconds; unpickling the validated objects takes
a fraction of that. An entry is keyed by what its value depends on, so it is right under
every change:

* the file's path (the objects name it as their source) and the SHA-256 of its exact bytes,
  read each time (a stamp such as mtime can be kept by a copy or an editor; content cannot);
* the code that made it: the SHA-256 of vipcast's version, Python's and pydantic's versions
  and the source of every module that parses or validates (``spec/``, this package's
  ``files.py`` and ``yaml_documents.py``): another vipcast never reads this one's entries.

An entry is written whole under a temporary name and renamed (a crash leaves no half entry);
one that cannot be read or is not what it should be is ignored and the file parsed as without
a cache. Entries of files no longer in the config (or of their old contents) are removed when
the next ones are written. The
directory holds pickles, which run code when loaded: it must be writable by this agent's
user only (it is created with mode 0700 and refused when others may write to it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from vipcast.sources.file_set import content_key
from vipcast.spec import Issue, Validated

log = logging.getLogger(__name__)

SUFFIX = ".validated"
#: objects pickled per step (see _write)
CHUNK = 256


def code_version() -> str:
    """A digest of the code an entry depends on (see the module)."""
    import pydantic

    import vipcast
    from vipcast import spec as spec_package

    digest = hashlib.sha256()
    digest.update(f"{vipcast.__version__}\0{sys.version}\0{pydantic.VERSION}\0".encode())
    here = Path(__file__).parent
    modules = sorted(Path(spec_package.__file__).parent.rglob("*.py"))
    modules += [here / "files.py", here / "yaml_documents.py", here / "validated_cache.py"]
    for module in modules:
        digest.update(module.name.encode() + b"\0" + module.read_bytes())
    return digest.hexdigest()[:32]


class ValidatedCache:
    """Validated files by (path, content) under ``directory`` (see the module)."""

    def __init__(self, directory: Path) -> None:
        self.root = directory
        self.directory = directory / code_version()
        self.usable = self._prepare(directory)
        self._pending: dict[str, Validated] = {}
        #: how many files the last loads took from the cache
        self.hits = 0

    def _prepare(self, root: Path) -> bool:
        try:
            for path in (root, self.directory):
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                st = path.stat()
                if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or st.st_uid != os.geteuid():
                    log.warning("not using the cache in %s: writable by others", path)
                    return False
        except OSError as exc:
            log.warning("not using the cache in %s: %s", root, exc)
            return False
        return True

    @staticmethod
    def key(path: str, data: bytes) -> str:
        return content_key(path, data)

    def get(self, key: str) -> Validated | None:
        """The entry (None: none, or unusable)."""
        if not self.usable:
            return None
        try:
            with (self.directory / (key + SUFFIX)).open("rb") as handle:
                # our own 0700 directory; the issues, then the objects a chunk at a time
                issues = pickle.load(handle)
                objects: list[object] = []
                while chunk := pickle.load(handle):
                    objects.extend(chunk)
            value = Validated(tuple(objects), tuple(issues))  # type: ignore[arg-type]
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged entry is only a cache miss
            log.warning("cache entry %s unusable (%s): parsing the file", key[:12], exc)
            return None
        if not all(isinstance(i, Issue) for i in value.issues):
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: Validated) -> None:
        """Remember an entry to write by :meth:`flush` (writing takes time: after the work)."""
        if self.usable:
            self._pending[key] = value

    def flush(self, keep: set[str]) -> None:
        """Write the remembered entries that are in ``keep`` (the entries of the config as it
        is now) and remove every other entry. Errors are logged (a cache that cannot be
        written only costs the next start its time)."""
        pending, self._pending = self._pending, {}
        if not self.usable:
            return
        for key, value in pending.items():
            if key not in keep:
                continue
            target = self.directory / (key + SUFFIX)
            temporary = target.with_suffix(f".{os.getpid()}.tmp")
            try:
                with temporary.open("wb") as handle:
                    _write(handle, value)
                os.replace(temporary, target)
            except OSError as exc:
                log.warning("cannot write the cache entry %s: %s", target, exc)
                with contextlib.suppress(OSError):
                    temporary.unlink()
        self._prune(self.directory, keep)
        try:  # another vipcast's entries (an upgrade): never read by this one
            others = [d for d in self.root.iterdir() if d.is_dir() and d != self.directory
                      and len(d.name) == len(self.directory.name)]
        except OSError:
            return
        for other in others:
            self._prune(other, set())
            with contextlib.suppress(OSError):
                other.rmdir()

    @staticmethod
    def _prune(directory: Path, keep: set[str]) -> None:
        try:
            entries = list(directory.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.suffix == SUFFIX and entry.stem not in keep:
                with contextlib.suppress(OSError):
                    entry.unlink()


def _write(handle: BinaryIO, value: Validated) -> None:
    """The issues, then the objects in chunks of :data:`CHUNK`, then an empty chunk: the
    GIL is held for one chunk at a time, so a flush in a worker thread never stalls the
    event loop (BFD, keepalives) for long."""
    protocol = pickle.HIGHEST_PROTOCOL
    pickle.dump(value.issues, handle, protocol=protocol)
    objects = value.objects
    for start in range(0, len(objects), CHUNK):
        pickle.dump(objects[start:start + CHUNK], handle, protocol=protocol)
    pickle.dump((), handle, protocol=protocol)
