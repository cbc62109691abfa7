"""The agent's first routes from its start cache, before the rest of the agent is imported.

A start from the start cache (:mod:`vipcast.app.start_cache`) spent most of the second before
its first TCP SYN importing the agent (pydantic's object model, the planner, the consumers):
none of that is needed to send the cached first routes. :func:`start_early` needs only the
BGP speaker (:mod:`vipcast.runtime.bgp.speaker`), the plan's value types
(:mod:`vipcast.core.desired`) and the names and keys of the object files
(:mod:`vipcast.sources.file_set`): it checks the cache file's header against the files as they
are now, reads the first record (the first plan's routes and BGP sessions), starts the speaker
with them, and returns it with the file left open past that record. ``vipcast agent`` then
imports the rest in a worker thread while the sessions open and the UPDATEs go out, and the
:class:`~vipcast.app.agent.Agent` adopts the speaker and the open file
(:meth:`vipcast.app.start_cache.StartCache.adopt`): the whole snapshot's plan, published next,
holds the very same routes, so the speaker sees no change (docs/pipeline.md, "Start-up").

The cache file's head (format, key, trust rules) is defined here, the rest of its reading and
its writing in :mod:`vipcast.app.start_cache`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pickle
import random
import signal
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, BinaryIO

from vipcast.core.desired import BGPRoute, BgpSession, NodeIdentity, NodePlan
from vipcast.runtime.bgp.peer import PeerSettings
from vipcast.runtime.bgp.speaker import Speaker
from vipcast.runtime.bgp.transport import TransportOptions
from vipcast.sources.file_set import Stamp, config_files, content_key, stamp_of

MAGIC = "vipcast-start-cache"
FORMAT = 4
#: the packages whose code made the cached values
_PACKAGES = ("spec", "alloc", "core", "sources")
_MODULES = ("app/agent.py", "app/agent_values.py", "app/gc_pauses.py", "app/start_cache.py",
            "app/start_early.py")
#: seconds the early start waits for its routes to be out before the agent goes on loading
#: (a peer that does not answer is not waited for longer; it is retried as always)
EARLY_WAIT = 1.0
#: in the state directory while an agent runs: found at start, the last one did not stop
#: cleanly (graceful restart, RFC 4724: the R-bit)
MARKER = "agent-running"


def code_digest() -> str:
    """A digest of the code the cached values depend on: vipcast's version and source
    (``_PACKAGES``, ``_MODULES``), Python's version, pydantic's version file (read, not
    imported: the early start does not import pydantic)."""
    import vipcast

    root = Path(vipcast.__file__).parent
    digest = hashlib.sha256(f"{vipcast.__version__}\0{sys.version}\0".encode())
    found = find_spec("pydantic")
    if found is not None and found.origin is not None:
        digest.update(b"pydantic\0" + (Path(found.origin).parent / "version.py").read_bytes())
    modules = [m for package in _PACKAGES for m in sorted((root / package).rglob("*.py"))]
    modules += [root / m for m in _MODULES]
    for module in modules:
        digest.update(str(module.relative_to(root)).encode() + b"\0" + module.read_bytes())
    return digest.hexdigest()[:32]


def cache_path(directory: Path, node: str) -> Path:
    """The start cache file of ``node`` in ``directory``."""
    return directory / f"start-{hashlib.sha256(node.encode()).hexdigest()[:16]}.pickle"


def private(path: Path) -> str | None:
    """Why ``path`` may not be trusted with pickles (None: it may): it must be ours, and
    writable by no one else."""
    try:
        st = path.stat()
    except OSError as exc:
        return str(exc)
    if st.st_uid != os.geteuid():
        return f"{path} belongs to uid {st.st_uid}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by others"
    return None


class _NoClasses(pickle.Unpickler):
    """Unpickles plain data only (the header): any class or function is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the header names {module}.{name}")


@dataclass(frozen=True)
class Files:
    """The object files as they are now: per file its stamp and per-file cache key."""

    stamps: dict[str, Stamp]
    keys: dict[str, str]


def current_files(paths: Sequence[Path]) -> Files | None:
    """Every object file's stamp (taken before its bytes are read: a later write changes it)
    and content key; None when one cannot be read (the load will say why)."""
    names, issues = config_files(paths)
    if issues:
        return None
    stamps: dict[str, Stamp] = {}
    keys: dict[str, str] = {}
    for path in names:
        name = str(path)
        found = stamp_of(path)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if found is None:
            return None
        stamps[name], keys[name] = found, content_key(name, data)
    return Files(stamps, keys)


def start_key(keys: dict[str, str], identity: NodeIdentity) -> str:
    """The key of a start: every file's content key, the node and its router id."""
    digest = hashlib.sha256(f"{identity.node}\0{identity.router_id or ''}\0".encode())
    for name in sorted(keys):
        digest.update(f"{name}\0{keys[name]}\0".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Early:
    """The first plan's routes and BGP sessions as a start without observations plans them
    (the snapshot's, :func:`vipcast.core.pipeline.plan` with ``Local()``)."""

    bgp: tuple[BGPRoute, ...]
    peers: tuple[BgpSession, ...]


@dataclass
class Reading:
    """The cache file open past its header (and, once read, its early record)."""

    handle: BinaryIO
    unpickler: pickle.Unpickler
    now: Files
    key: str
    early: object = None


def is_early(record: object) -> bool:
    return (isinstance(record, tuple) and len(record) == 4 and record[0] == "early"
            and isinstance(record[1], NodeIdentity) and isinstance(record[2], tuple)
            and all(isinstance(r, BGPRoute) for r in record[2])
            and isinstance(record[3], tuple) and all(isinstance(p, BgpSession) for p in record[3]))


def open_cache(path: Path, paths: Sequence[Path], identity: NodeIdentity, code: str
               ) -> tuple[Reading | None, str | None]:
    """The cache file at ``path`` opened past its header if it is this start's: the reading
    (None: a miss) and why it missed. A reading the caller does not keep must be closed."""
    if not path.exists():
        return None, "no cache file"
    doubt = private(path.parent) or private(path)
    if doubt is not None:
        return None, f"not trusted: {doubt}"
    now = current_files(paths)
    if now is None:
        return None, "an object file cannot be read"
    key = start_key(now.keys, identity)
    handle = path.open("rb")
    try:
        header = _NoClasses(handle).load()
    except Exception:
        handle.close()
        raise
    wanted = (MAGIC, FORMAT, code, key)
    if not isinstance(header, tuple) or header[:3] != wanted[:3]:
        handle.close()
        return None, "written by another vipcast (format or code)"
    if header != wanted:
        handle.close()
        return None, "made from other object files (or another node)"
    # the rest: trusted (ours, written by this code, see vipcast.app.start_cache)
    return Reading(handle, pickle.Unpickler(handle), now, key), None


def read_early(reading: Reading, identity: NodeIdentity) -> Early | None:
    """The early record of an open cache file (kept in ``reading``), as this identity's
    first routes (None: not usable for it)."""
    record = reading.unpickler.load()
    if not is_early(record):
        return None
    assert isinstance(record, tuple)
    reading.early = record
    _, cached_identity, bgp, peers = record
    return Early(bgp, peers) if cached_identity == identity else None


def to_peer_settings(session: BgpSession) -> PeerSettings:
    """The speaker's settings of one planned BGP session."""
    return PeerSettings(
        name=session.name, address=session.address, port=session.port,
        session=session.session,
        transport=TransportOptions(
            source_address=session.source_address, ttl=session.ttl,
            gtsm_hops=session.gtsm_hops, md5_password=session.md5_password,
        ),
    )


def agent_speaker(listen: Sequence[tuple[str, int]], seed: int | None, log: logging.Logger
                  ) -> tuple[random.Random, Speaker]:
    """The agent's random source and BGP speaker, made as :class:`~vipcast.app.agent.Agent`
    makes them (the speaker's jitter comes from the agent's seed)."""
    rng = random.Random(seed)
    return rng, Speaker(listen=tuple(listen), rng=random.Random(rng.random()),
                        log=log.getChild("bgp"))


@dataclass
class EarlyStart:
    """What :func:`start_early` hands the agent: its random source and speaker (started, with
    the first routes and sessions when the cache held them), the open cache file, and the
    signals that arrived meanwhile (the agent acts on them once it runs)."""

    rng: random.Random
    speaker: Speaker
    identity: NodeIdentity
    reading: Reading | None = None
    early: Early | None = None
    missed: str | None = None
    signals: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class StartArgs:
    """What :func:`start_early` needs of the agent's options (``vipcast agent``'s)."""

    paths: tuple[Path, ...]
    node: str
    cache_dir: Path
    router_id: str | None = None
    state_dir: Path | None = None
    listen: tuple[tuple[str, int], ...] = ()
    seed: int | None = None


async def start_early(args: StartArgs, log: logging.Logger | None = None) -> EarlyStart:
    """On the running loop: the start cache's first routes handed to a started speaker (see
    the module); on a miss (no file, other files, another vipcast) nothing is started and
    :attr:`EarlyStart.missed` says why. SIGHUP, SIGTERM and SIGINT are held from here until
    the agent installs its own handlers."""
    log = log or logging.getLogger("vipcast.agent")
    loop = asyncio.get_running_loop()
    restarting = args.state_dir is not None and (args.state_dir / MARKER).exists()
    identity = NodeIdentity(args.node, args.router_id, restarting)
    rng, speaker = agent_speaker(args.listen, args.seed, log)
    started = EarlyStart(rng, speaker, identity)
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, started.signals.append, sig)
    try:
        reading, started.missed = open_cache(cache_path(args.cache_dir, args.node), args.paths,
                                             identity, code_digest())
        early = read_early(reading, identity) if reading is not None else None
    except Exception as exc:  # a damaged file is only a miss
        reading, early = None, None
        started.missed = f"unusable ({type(exc).__name__}: {exc})"
    if reading is not None and early is None:
        reading.handle.close()
        reading, started.missed = None, started.missed or "made for another identity"
    if reading is None or early is None:
        return started
    started.reading, started.early = reading, early
    await speaker.start()
    await speaker.apply(NodePlan(node=args.node, bgp=early.bgp, peers=early.peers))
    changes = speaker.configure([to_peer_settings(s) for s in early.peers])
    log.info("peers (start cache, early): %s", ", ".join(changes) or "none")
    return started


def routes_sent(started: EarlyStart) -> Callable[[Speaker], bool]:
    """Whether every peer of the early routes has them all (Established, every prefix
    advertised) or has failed an attempt already (an error: it retries on its own)."""
    return routes_done(started.early.bgp if started.early is not None else ())


def routes_done(routes: Sequence[BGPRoute]) -> Callable[[Speaker], bool]:
    """Whether every peer of ``routes`` has them all (Established, every prefix advertised)
    or has failed an attempt already (an error: it retries on its own)."""
    wanted: dict[str, int] = {}
    for route in routes:
        for peer in route.peers:
            wanted[peer] = wanted.get(peer, 0) + 1

    def done(speaker: Speaker) -> bool:
        return all((p.state == "Established" and p.prefixes_advertised >= wanted.get(p.name, 0))
                   or p.last_error is not None for p in speaker.status())

    return done


async def routes_out(started: EarlyStart, limit: float = EARLY_WAIT) -> bool:
    """Until the early routes are out (:func:`routes_sent`) or ``limit`` seconds passed:
    whatever runs next (importing and restoring the rest of the agent, seconds of CPU in all)
    would otherwise compete with the session's OPEN exchange and UPDATEs for the interpreter."""
    if started.early is None:
        return False
    return await started.speaker.wait_for(routes_sent(started), timeout=limit)
