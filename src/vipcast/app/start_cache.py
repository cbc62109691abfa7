"""A cache on disk of the agent's whole start: one file that, when the object files are the
ones it was made from, replaces reading, validating, allocating and planning them.

The per-file cache (:mod:`vipcast.sources.validated_cache`) spares a restart the YAML and the
validation, but allocation and planning still run over every Service (about 1.2 s of CPU for
10,000 of them, more than unpickling the validated files). This cache keeps, in one pickle
stream, everything the agent holds after a load: per file its validated objects (the source's
memory), the assembler's and the incremental planner's memory, the Gateways' stand-in Services
(:class:`~vipcast.core.gateway.address.GatewayServices`, by object) and the snapshot (the
config, its duties and the proxy model, :class:`~vipcast.core.pipeline.Snapshot`). One stream
keeps the objects shared between them shared, so a reload after the start is as incremental as
in the process that wrote it (an unchanged Service or Gateway is the same object in the files'
entries, the spec and the planner).

It is used only when it is exactly right:

* the key is the SHA-256 of every object file's path and exact bytes (read at each start; a
  stamp such as mtime proves nothing about content), of this node's name and router id;
* the header names a format and a digest of the code the values come from (vipcast's version,
  Python's and pydantic's, and the source of ``spec/``, ``alloc/``, ``core/``, ``sources/``
  and the agent's modules): another vipcast's file is never read past its header;
* the header is read with an unpickler that refuses every class (plain strings and numbers
  only); the rest only from a file this user owns, no one else may write, in a directory the
  same holds for (a pickle runs code when loaded); whatever it holds is checked for its types.

The stream starts with the first plan's routes and BGP sessions (the snapshot's plan as a start
without observations makes it): :meth:`StartCache.early` reads just them (a few hundredths of a
second) and the agent hands them to the speaker, so the sessions open and the UPDATEs go out
while the rest (mostly the validated objects, tenths of a second) is read; the whole snapshot's
plan, published next, holds the very same route tuple, so the speaker sees no change.

Anything else (no file, another key or version, a damaged or foreign file) is a miss, logged
with its reason, and the agent loads as without it. The file is written whole under a temporary
name and renamed, in a worker thread, a chunk of objects at a time (the GIL is released between
chunks), only once a config has been running unchanged for a while (``cache_quiet``, 5 s).
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import BinaryIO

from vipcast.app.start_early import (
    FORMAT,
    MAGIC,
    Early,
    Files,
    Reading,
    cache_path,
    code_digest,
    is_early,
    open_cache,
    private,
    read_early,
    start_key,
)
from vipcast.core.desired import NodeIdentity
from vipcast.core.gateway.address import GatewayServices, gateway_addresses
from vipcast.core.incremental import NodePlanner
from vipcast.core.pipeline import Snapshot, snapshot
from vipcast.sources.files import FilesState, ObjectFiles

log = logging.getLogger("vipcast.agent.start_cache")

#: objects pickled per chunk (the GIL is held for one chunk)
CHUNK = 512


@dataclass(frozen=True)
class Restored:
    """What a hit gives the agent: the planner with its memory, the Gateways' stand-in
    Services it planned (:class:`~vipcast.core.gateway.address.GatewayServices`: an unchanged
    Gateway keeps its stand-in object, so a reload plans it as unchanged) and the snapshot."""

    planner: NodePlanner
    gateways: GatewayServices
    snapshot: Snapshot


def _chunks(state: FilesState, snap: Snapshot) -> Iterator[list[object]]:
    """The big values' elements in chunks, pickled before the state that holds them (their
    memo entries make the state's own pickle small)."""
    big: list[Sequence[object]] = [entry.validated.objects for entry in state.entries.values()]
    for plan in (snap.duties, snap.plan_base):
        big += [v for f in fields(plan) if isinstance(v := getattr(plan, f.name), tuple)
                and len(v) > CHUNK]
    for values in big:
        for start in range(0, len(values), CHUNK):
            yield list(values[start:start + CHUNK])


class StartCache:
    """The start cache of one node in ``directory`` (see the module)."""

    def __init__(self, directory: Path, node: str) -> None:
        self.directory = directory
        self.path = cache_path(directory, node)
        self._code: str | None = None
        #: the key of what the file holds (restored or written by this process)
        self.key: str | None = None
        #: the snapshot the file holds (nothing to write while it is the current one)
        self.holds: Snapshot | None = None
        #: why the last restore missed (None: it hit, or none was tried)
        self.missed: str | None = None
        self._reading: Reading | None = None

    def code(self) -> str:
        if self._code is None:
            self._code = code_digest()
        return self._code

    # ---- reading ----------------------------------------------------------------------------

    def early(self, paths: Sequence[Path], identity: NodeIdentity) -> Early | None:
        """The first plan's routes and sessions, read ahead of the rest (a few hundredths of
        a second instead of tenths): when the file is that of the files as they are now and was
        written for this identity. The file stays open for :meth:`restore`."""
        try:
            opened = self._open(paths, identity)
            early = read_early(opened, identity) if opened is not None else None
        except Exception as exc:  # a damaged file is only a miss
            self._close()
            self.missed = f"unusable ({type(exc).__name__}: {exc})"
            return None
        if opened is None or opened.early is None:
            self._close()
        return early

    def adopt(self, reading: Reading) -> None:
        """Take the file :func:`vipcast.app.start_early.start_early` opened and read the
        early record of (:meth:`restore` goes on from there)."""
        self._close()
        self._reading = reading

    def restore(self, files: ObjectFiles, identity: NodeIdentity) -> Restored | None:
        """The cached start if it is that of the files as they are now (installing the files'
        entries into ``files``), else None with the reason logged."""
        try:
            restored = self._restore(files, identity)
        except Exception as exc:  # a damaged file is only a miss
            restored, self.missed = None, f"unusable ({type(exc).__name__}: {exc})"
        finally:
            self._close()
        if restored is None:
            log.info("start cache %s not used: %s", self.path, self.missed)
        else:
            self.missed = None
        return restored

    def _open(self, paths: Sequence[Path], identity: NodeIdentity) -> Reading | None:
        """The file opened past its header, if it is this start's (else None, ``missed``)."""
        self._close()
        self._reading, missed = open_cache(self.path, paths, identity, self.code())
        if self._reading is None:
            self.missed = missed
        return self._reading

    def _close(self) -> None:
        if self._reading is not None:
            self._reading.handle.close()
            self._reading = None

    def _restore(self, files: ObjectFiles, identity: NodeIdentity) -> Restored | None:
        opened = self._reading
        if opened is None or opened.early is None:  # early() did not run (or missed)
            self._close()
            opened = self._open(files.paths, identity)
            if opened is None:
                return None
            opened.early = opened.unpickler.load()
        if not is_early(opened.early) or opened.key != start_key(opened.now.keys, identity):
            self.missed = "unexpected content"
            return None
        while opened.unpickler.load():  # the chunks, up to an empty one
            pass
        checked = _checked(opened.unpickler.load(), opened.now)
        if checked is None:
            self.missed = "unexpected content"
            return None
        files_state, planner, gateways, snap, cached_identity = checked
        files.adopt(files_state, opened.now.stamps)
        if cached_identity != identity:  # restarting differs: the sessions' R-bit
            spec = snap.spec  # the Gateways' proxy model as the agent makes it (Agent.load)
            allocated = (gateway_addresses(planner.assignments)
                         if spec.gateways or spec.ingresses else {})
            snap = snapshot(spec, snap.duties, identity, gateway_addresses=allocated)
        self.key, self.holds = opened.key, snap
        return Restored(planner, gateways, snap)

    # ---- writing ----------------------------------------------------------------------------

    def save(self, state: FilesState, planner: NodePlanner, gateways: GatewayServices,
             snap: Snapshot, identity: NodeIdentity, abandon: threading.Event | None = None
             ) -> bool:
        """Write the start of ``snap`` (the files' entries it came from, the planner's and the
        Gateways' stand-ins' memory); in a worker thread, with no load running meanwhile.
        ``abandon`` set (a reload waits): stop between two chunks, write nothing. False: not
        written (logged)."""
        keys = {name: entry.key for name, entry in state.entries.items()}
        if any(k is None for k in keys.values()):
            return False
        key = start_key({n: k for n, k in keys.items() if k is not None}, identity)
        if private(self.directory) is not None:
            log.warning("start cache not written: %s", private(self.directory))
            return False
        bare = replace(snap, filter=None, dead_index=None)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        try:
            with temporary.open("wb") as handle:
                pickle.dump((MAGIC, FORMAT, self.code(), key), handle,
                            protocol=pickle.HIGHEST_PROTOCOL)
                values = {"files": state, "planner": planner, "gateways": gateways,
                          "snapshot": bare, "identity": identity}
                _write_body(handle, ("early", identity, bare.plan_base.bgp, bare.plan_base.peers),
                            state, bare, values, abandon or threading.Event())
            os.replace(temporary, self.path)
        except _Abandoned:
            log.info("start cache not written: a reload came first")
            temporary.unlink(missing_ok=True)
            return False
        except (OSError, pickle.PicklingError) as exc:
            log.warning("start cache not written to %s: %s", self.path, exc)
            temporary.unlink(missing_ok=True)
            return False
        self.key, self.holds = key, snap
        return True


class _Abandoned(Exception):
    """A reload waits for the writer: it stops."""


def _write_body(handle: BinaryIO, early: tuple[object, ...], state: FilesState, snap: Snapshot,
                values: dict[str, object], abandon: threading.Event) -> None:
    """The early record (the first plan's routes and sessions), the chunks (each one ``dump``,
    one pickler: a later record refers to an earlier one's objects), then an empty chunk,
    then ``values``."""
    pickler = pickle.Pickler(handle, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dump(early)
    for chunk in _chunks(state, snap):
        if abandon.is_set():
            raise _Abandoned
        pickler.dump(chunk)
    pickler.dump([])
    pickler.dump(values)


def _checked(state: object, now: Files
             ) -> tuple[FilesState, NodePlanner, GatewayServices, Snapshot, NodeIdentity] | None:
    """The restored values, if they have the types and files they should."""
    if not isinstance(state, dict):
        return None
    files_state, planner = state.get("files"), state.get("planner")
    gateways = state.get("gateways")
    snap, identity = state.get("snapshot"), state.get("identity")
    if not (isinstance(files_state, FilesState) and isinstance(planner, NodePlanner)
            and isinstance(gateways, GatewayServices)
            and isinstance(snap, Snapshot) and isinstance(identity, NodeIdentity)):
        return None
    if set(files_state.entries) != set(now.stamps) or any(
        files_state.entries[name].key != key for name, key in now.keys.items()
    ):
        return None
    return files_state, planner, gateways, snap, identity

