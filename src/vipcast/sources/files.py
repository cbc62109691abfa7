"""Objects from YAML files: the standalone source. Reading and watching files live here.

A config is a YAML file, or a directory of them (``.yaml``, ``.yml``, ``.json``; names starting
with a dot are skipped, which keeps the state file out), holding any number of documents.
``List`` objects are unrolled.

:class:`ObjectFiles` keeps, per file, what it made of it the last time — the validated objects
(:func:`vipcast.spec.validate_documents`) or the file's problems — keyed by the file's
``(mtime_ns, size, inode)``. A load stats every file and reads, parses and validates only the
files whose key changed (parsed together on the CPUs the process may use:
:mod:`vipcast.sources.yaml_split`); the other files' objects are the same Python objects
as before, so the planner can tell an unchanged Service by identity. Assembly and cross-checks
(:func:`vipcast.spec.assemble`) run on the whole set every time (about 30 ms for 10,000
Services); a problem anywhere refuses the whole config.

:func:`watch` tells when something under the paths may have changed: with inotify (the
`asyncinotify <https://pypi.org/project/asyncinotify/>`_ package, Linux) when it can, else by
comparing the files' keys every ``poll_interval`` seconds. Either way the caller then calls
:meth:`ObjectFiles.changed` / :meth:`ObjectFiles.load`, which decide from the keys; an event
is only a hint.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from vipcast.sources.early_parse import EarlyParse
from vipcast.sources.file_set import YAML_SUFFIXES as YAML_SUFFIXES
from vipcast.sources.file_set import Stamp as Stamp
from vipcast.sources.file_set import config_files as config_files
from vipcast.sources.file_set import stamp_of as stamp_of
from vipcast.sources.file_set import text_of
from vipcast.sources.validated_cache import ValidatedCache
from vipcast.sources.yaml_split import load_many
from vipcast.spec import Issue, Spec, SpecError, Validated, validate_documents
from vipcast.spec.load import Assembler

log = logging.getLogger(__name__)

#: raw documents freed per step after validation (see ObjectFiles.load)
RELEASE_STEP = 64


def parse_file(path: Path) -> tuple[list[tuple[str, object]], list[Issue]]:
    """The YAML documents of one file (``List`` unrolled), or the reason it cannot be read.

    Parsed as ``yaml.safe_load_all`` would (:mod:`vipcast.sources.yaml_documents`), a big file
    on several CPUs (:mod:`vipcast.sources.yaml_split`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [Issue(str(path), "", "", "", f"cannot read: {exc}")]
    return parse_bytes(str(path), data)


def parse_bytes(source: str, data: bytes) -> tuple[list[tuple[str, object]], list[Issue]]:
    """:func:`parse_file` of a file's bytes (UTF-8 text)."""
    return parse_many([(source, data)])[0]


def parse_many(
    files: Sequence[tuple[str, bytes]], early: EarlyParse | None = None,
) -> list[tuple[list[tuple[str, object]], list[Issue]]]:
    """:func:`parse_bytes` of each ``(source, bytes)``, the files parsed together on the CPUs
    the process may use (:func:`vipcast.sources.yaml_split.load_many`): a directory of many
    files as well as one big file. A file whose very bytes ``early`` parsed already
    (:mod:`vipcast.sources.early_parse`) takes its documents from there."""
    out: list[tuple[list[tuple[str, object]], list[Issue]]] = [([], []) for _ in files]
    texts: list[str] = []
    which: list[int] = []
    results: dict[int, list[object] | yaml.YAMLError] = {}
    for at, (source, data) in enumerate(files):
        found = early.documents(source, data) if early is not None else None
        if found is not None:
            results[at] = found
            continue
        try:
            text = text_of(data)
        except UnicodeDecodeError as exc:
            out[at] = ([], [Issue(source, "", "", "", f"cannot read: {exc}")])
            continue
        texts.append(text)
        which.append(at)
    results.update(zip(which, load_many(texts), strict=True))
    for at, result in sorted(results.items()):
        source = files[at][0]
        if isinstance(result, yaml.YAMLError):
            mark = getattr(result, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(result, "problem", None) or str(result)
            out[at] = ([], [Issue(source, "", "", "", f"invalid YAML{where}: {problem}")])
            continue
        docs: list[tuple[str, object]] = []
        for doc in result:
            if doc is None:
                continue
            if isinstance(doc, dict) and doc.get("kind") == "List":
                docs.extend((source, item) for item in doc.get("items") or [])
            else:
                docs.append((source, doc))
        out[at] = (docs, [])
    return out


def read_documents(paths: Iterable[str | Path]) -> list[tuple[str, object]]:
    """Every YAML document of the files (``List`` objects unrolled), or SpecError."""
    files, issues = config_files(paths)
    read: list[tuple[str, bytes]] = []
    for path in files:
        try:
            read.append((str(path), path.read_bytes()))
        except OSError as exc:
            issues.append(Issue(str(path), "", "", "", f"cannot read: {exc}"))
    docs: list[tuple[str, object]] = []
    for found, problems in parse_many(read):
        docs.extend(found)
        issues.extend(problems)
    if issues:
        raise SpecError(issues)
    return docs


def load_paths(paths: Iterable[str | Path]) -> Spec:
    """Read, validate and cross-check the object files at ``paths`` (files or directories)."""
    return ObjectFiles(tuple(Path(p) for p in paths)).load()


@dataclass(frozen=True)
class _Cached:
    stamp: Stamp
    validated: Validated
    #: the disk cache's key of the content validated (None: no disk cache)
    key: str | None = None


@dataclass(frozen=True)
class FilesState:
    """:meth:`ObjectFiles.state`: the validated files by name, and the assembler's memory."""

    entries: Mapping[str, _Cached]
    assemble: Assembler


class ObjectFiles:
    """The object files at ``paths``, read again only where a file changed."""

    def __init__(self, paths: Sequence[Path], *, cache: ValidatedCache | None = None,
                 early: EarlyParse | None = None) -> None:
        self.paths = tuple(paths)
        #: validated files kept on disk across restarts (None: none)
        self.disk = cache
        #: the files as parsed before the first load (:mod:`vipcast.sources.early_parse`):
        #: the first load takes the documents of the files whose bytes are those; then None
        self.early = early
        self._cache: dict[str, _Cached] = {}
        self._assemble = Assembler()
        #: the stamps of the files the last :meth:`load` saw (refused or not)
        self.stamps: dict[str, Stamp] = {}
        #: how many files the last load read and parsed (the others came from the cache)
        self.parsed = 0

    def drop_early(self) -> None:
        """Let go of the early parse unused (the first load came from elsewhere: the start
        cache); its workers are stopped and reaped."""
        early, self.early = self.early, None
        if early is not None:
            early.close()

    def save(self) -> None:
        """Write what the last loads validated to the disk cache (if any): after the work,
        in a worker thread (see :meth:`ValidatedCache.flush`)."""
        if self.disk is not None:
            self.disk.flush({e.key for e in self._cache.values() if e.key is not None})

    def state(self) -> FilesState:
        """What the last load kept (per file, its validated objects; the assembler's memory),
        for a cache of the agent's whole start (``app/start_cache.py``)."""
        return FilesState(dict(self._cache), self._assemble)

    def adopt(self, state: FilesState, stamps: Mapping[str, Stamp]) -> None:
        """Take ``state`` as what the last load kept, the files now at ``stamps`` (their
        content checked by the caller): the next load reads only files changed since."""
        self._cache = {name: replace(entry, stamp=stamps[name])
                       for name, entry in state.entries.items()}
        self._assemble = state.assemble
        self.stamps = dict(stamps)

    def current_stamps(self) -> dict[str, Stamp]:
        files, _ = config_files(self.paths)
        out: dict[str, Stamp] = {}
        for path in files:
            stamp = stamp_of(path)
            if stamp is not None:
                out[str(path)] = stamp
        return out

    def changed(self) -> bool:
        """Whether any file appeared, vanished or changed since the last :meth:`load`."""
        return self.current_stamps() != self.stamps

    def load(self) -> Spec:
        """The whole config, or SpecError listing every problem (the stamps are recorded either
        way, so an unchanged broken config is not reported again by :meth:`changed`)."""
        files, issues = config_files(self.paths)
        seen: dict[str, Stamp] = {}
        present: list[tuple[str, Stamp]] = []  # in order, a file named twice twice
        stale: dict[str, Path] = {}
        for path in files:
            name = str(path)
            stamp = stamp_of(path)
            if stamp is None:
                issues.append(Issue(name, "", "", "", "cannot read: the file vanished"))
                continue
            seen[name] = stamp
            present.append((name, stamp))
            entry = self._cache.get(name)
            if (entry is None or entry.stamp != stamp) and name not in stale:
                stale[name] = path
        self.parsed = 0
        # the new or changed files: read and parsed together (on several CPUs), validated
        fresh = self._validate(list(stale.values()))
        parts: list[Validated] = []
        cache: dict[str, _Cached] = {}
        for name, stamp in present:
            entry = cache.get(name)
            if entry is None:
                entry = _Cached(stamp, *fresh[name]) if name in fresh else self._cache[name]
            cache[name] = entry
            parts.append(entry.validated)
        self._cache = cache
        self.stamps = seen
        if issues:
            raise SpecError([*issues, *(i for p in parts for i in p.issues)])
        return self._assemble(parts)

    def _validate(self, paths: Sequence[Path]) -> dict[str, tuple[Validated, str | None]]:
        """Each file read, parsed and validated (or taken from the disk cache by content),
        with its disk cache key, by name; the files to parse are parsed together."""
        out: dict[str, tuple[Validated, str | None]] = {}
        todo: list[tuple[str, bytes, str | None]] = []
        for path in paths:
            name = str(path)
            try:
                data = path.read_bytes()
            except OSError as exc:
                out[name] = Validated((), (Issue(name, "", "", "", f"cannot read: {exc}"),)), None
                continue
            key = None
            if self.disk is not None:
                key = self.disk.key(name, data)
                kept = self.disk.get(key)
                if kept is not None:
                    out[name] = kept, key
                    continue
            todo.append((name, data, key))
        early, self.early = self.early, None
        try:
            parsed = parse_many([(name, data) for name, data, _key in todo], early)
        finally:
            if early is not None:
                early.close()
        self.parsed += len(todo)
        for (name, _data, key), (docs, problems) in zip(todo, parsed, strict=True):
            validated = validate_documents(docs)
            # free the raw documents a few at a time: one big deallocation cascade holds the
            # GIL for ~0.1 s per 10,000 documents, even in a worker thread
            while docs:
                del docs[-RELEASE_STEP:]
            if problems:
                validated = Validated(validated.objects, (*problems, *validated.issues))
            if self.disk is not None and key is not None:
                self.disk.put(key, validated)
            out[name] = validated, key
        return out


async def watch(
    paths: Sequence[Path],
    changed: Callable[[], Awaitable[None]],
    *,
    poll_interval: float = 1.0,
    settle: float = 0.02,
) -> None:
    """Await ``changed()`` whenever something under ``paths`` may have changed. Runs until
    cancelled. inotify when available (events within ``settle`` seconds are one change),
    else polling every ``poll_interval`` seconds."""
    import asyncio  # here: the one-shot commands that only load files do not import it
    try:
        from asyncinotify import Mask, RecursiveInotify
    except ImportError:  # pragma: no cover - the dependency is declared; a stripped install
        log.info("inotify package missing: polling the object files every %ss", poll_interval)
        await _poll(paths, changed, poll_interval)
        return
    mask = (Mask.CLOSE_WRITE | Mask.MOVED_TO | Mask.MOVED_FROM | Mask.CREATE | Mask.DELETE
            | Mask.ATTRIB | Mask.DELETE_SELF | Mask.MOVE_SELF)
    try:
        inotify = RecursiveInotify()
    except OSError as exc:
        log.info("inotify unavailable (%s): polling the object files every %ss", exc,
                 poll_interval)
        await _poll(paths, changed, poll_interval)
        return
    with inotify:
        try:
            for path in paths:
                if path.is_dir():
                    inotify.add_recursive_watch(path, mask)
                else:  # a file: watch its directory (editors replace files by renaming)
                    inotify.add_watch(path.parent if str(path.parent) else Path("."), mask)
        except (OSError, ValueError) as exc:
            log.info("cannot watch %s (%s): polling every %ss", paths, exc, poll_interval)
            await _poll(paths, changed, poll_interval)
            return
        while True:
            await inotify.get()
            # a burst (an editor's save, several files copied) is one change
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settle):
                    while True:
                        await inotify.get()
            await changed()


async def _poll(
    paths: Sequence[Path], changed: Callable[[], Awaitable[None]], every: float
) -> None:
    import asyncio

    files = ObjectFiles(paths)
    last = files.current_stamps()
    while True:
        await asyncio.sleep(every)
        now = files.current_stamps()
        if now != last:
            last = now
            await changed()
