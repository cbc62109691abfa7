"""One big YAML stream parsed on several CPUs, with exactly the values of a serial parse.

A file of 10,000 Services is one stream of 20,000 documents, and parsing it is a second of
one CPU (:mod:`vipcast.sources.yaml_documents`). YAML documents are independent once the
parser is past a document-start line, so :func:`load_all` cuts the text at such lines into as
many parts as the process may use CPUs, parses the first part itself and each other part in a
worker process (:mod:`vipcast.sources.yaml_worker` in a fresh interpreter, ``python -P``,
that imports only PyYAML and the loader, ~40 ms; never ``fork()``, which the agent's threads
make unsafe), and joins the documents in order.

Where a cut is made (:func:`parts`) is what makes the result exact:

- only at a line that is ``---`` alone or followed by a blank, at column 0. The parser always
  takes such a line for a document start: a block scalar's content is indented by at least one
  space (libyaml and PyYAML alike), a plain scalar ends before it, and inside a quoted scalar
  or a flow collection it is an error (which the part before the cut also raises, see below);
- never in a text holding a directive (a line starting with ``%``: it belongs to the document
  after it), a byte-order mark, or a line break other than ``\\n`` (NEL, LS, PS and CR also
  break lines for YAML: a ``---`` after one would be missed, never wrongly taken);
- anchors and tags are per document in YAML, so a part does not need what came before it.

If any part raises (or a worker fails in any way), the whole text is parsed serially, so an
invalid file gives the very error, with the line and column, that a serial parse gives. The
documents come back from a worker with :mod:`marshal` (values shared through YAML aliases stay
shared), or :mod:`pickle` when a value is one marshal cannot carry (a timestamp).
"""

from __future__ import annotations

import itertools
import marshal
import math
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from vipcast.sources import yaml_documents
from vipcast.sources.yaml_worker import MARSHAL, PICKLE

#: characters of text a worker process is worth: below this a stream is parsed serially (a
#: worker costs ~40 ms of CPU to start; 256 KiB of object YAML is ~50 ms to parse)
MIN_PART = 256 * 1024
#: at most this many parts, whatever the CPUs
MAX_PARTS = 8
#: characters the calling thread's part is longer than a worker's: the worker's start and its
#: hand-over (marshal both ways) are ~0.1 s that the caller spends parsing meanwhile
HEAD_START = 200 * 1024

#: characters after which no cut is made at all (see the module docstring)
_NO_CUT = ("\ufeff", "\x85", "\u2028", "\u2029", "\r")
_WORKER_CODE = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from vipcast.sources.yaml_worker import main; sys.exit(main())")


def usable_cpus(cgroup_fs: Path = Path("/sys/fs/cgroup"),
                proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """How many CPUs this process may use: its affinity mask, bounded by its cgroup's CPU
    quota (a container's CPU limit; a quota of 1.5 CPUs counts as 2: two processes still get
    more done than one)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_fs, proc_cgroup)
    return cpus if quota is None else max(1, min(cpus, math.ceil(quota)))


def cgroup_cpu_quota(cgroup_fs: Path, proc_cgroup: Path) -> float | None:
    """The CPU quota (CPUs) of this process's cgroup and its ancestors, the smallest (cgroup v2
    ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``); None: no quota (or no
    cgroup file to tell)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    found: list[float] = []
    files: tuple[str, ...]
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one hierarchy, cpu.max in each cgroup
            base, files = cgroup_fs, ("cpu.max",)
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's hierarchy
            base = next((d for d in (cgroup_fs / controllers, cgroup_fs / "cpu")
                         if d.is_dir()), cgroup_fs / "cpu")
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        # the cgroup and its ancestors (a container may see its own cgroup as the root)
        here = base / path.strip("/")
        for directory in (here, *here.parents):
            if not directory.is_relative_to(base):
                break
            limit = _quota_in(directory, files)
            if limit is not None:
                found.append(limit)
    return min(found) if found else None


def _quota_in(directory: Path, files: tuple[str, ...]) -> float | None:
    try:
        texts = [(directory / name).read_text().split() for name in files]
    except (OSError, ValueError):
        return None
    try:
        if len(files) == 1:  # v2: "max 100000" or "150000 100000"
            quota, period = texts[0][0], texts[0][1]
        else:
            quota, period = texts[0][0], texts[1][0]
        if quota in ("max", "-1"):
            return None
        return int(quota) / int(period) if int(period) > 0 and int(quota) > 0 else None
    except (IndexError, ValueError):
        return None


def parts(text: str, count: int, min_part: int | None = None, head_start: int = 0) -> list[str]:
    """``text`` cut into at most ``count`` parts of at least ``min_part`` characters, each
    after the first starting with a document-start line; ``[text]`` when it cannot be cut (see
    the module docstring). The first part is ``head_start`` characters longer than the others
    (``min_part``: :data:`MIN_PART` unless given).
    """
    count = min(count, MAX_PARTS, len(text) // max(MIN_PART if min_part is None else min_part, 1))
    if count < 2 or text.startswith("%") or "\n%" in text or any(c in text for c in _NO_CUT):
        return [text]
    share = (len(text) - head_start) / count
    cuts: list[int] = []
    for i in range(1, count):
        at = text.find("\n---", int(head_start + share * i) - 1)
        while at != -1 and text[at + 4:at + 5] not in ("", "\n", " ", "\t"):
            at = text.find("\n---", at + 1)  # "---x" is a plain scalar, not a document start
        if at == -1:
            break
        cut = at + 1  # the part starts with the "---" line
        if cut >= len(text) or (cuts and cut <= cuts[-1]):
            continue
        cuts.append(cut)
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def load_all(text: str, cpus: int | None = None) -> list[object]:
    """``yaml_documents.load_all(text)`` (what ``yaml.load_all(text, Loader=SafeLoader)``
    gives, or raises), on up to ``cpus`` CPUs (default: :func:`usable_cpus`)."""
    result = load_many([text], cpus)[0]
    if isinstance(result, yaml.YAMLError):
        raise result
    return result


def load_many(texts: Sequence[str], cpus: int | None = None
              ) -> list[list[object] | yaml.YAMLError]:
    """:func:`load_all` of each text (its documents, or the error a serial parse of it
    raises), the texts together on up to ``cpus`` CPUs: a big text is cut into parts
    (:func:`parts`), and the parts and whole small texts are dealt out in order to the caller
    and to worker processes, about the same number of characters each (the caller
    :data:`HEAD_START` more)."""
    count = usable_cpus() if cpus is None else cpus
    total = sum(len(t) for t in texts)
    count = min(count, MAX_PARTS, total // MIN_PART)
    if count < 2:
        return [_serial(t) for t in texts]
    units: list[tuple[int, str]] = []  # (text, part of it), in order
    head = HEAD_START  # the first part of the first text cut goes to the caller
    for at, text in enumerate(texts):
        pieces = parts(text, count, head_start=head)
        if len(pieces) > 1:
            head = 0
        units.extend((at, piece) for piece in pieces)
    groups = _deal(units, count, total)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        try:
            for group in groups[1:]:
                workers.append(_start([piece for _at, piece in group]))
        except OSError:  # no process to be had (limits, no interpreter): one CPU it is
            return [_serial(t) for t in texts]
        results: list[list[object] | None] = [_parsed(piece) for _at, piece in groups[0]]
        for worker, group in zip(workers, groups[1:], strict=True):
            done = _result(worker, len(group))
            results.extend(done if done is not None else [None] * len(group))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()
    out: list[list[object] | yaml.YAMLError] = [[] for _ in texts]
    failed: set[int] = set()
    for (at, _piece), docs in zip((u for g in groups for u in g), results, strict=True):
        if docs is None:
            failed.add(at)
        elif at not in failed:
            joined = out[at]
            assert isinstance(joined, list)
            joined.extend(docs)
    for at in failed:  # a part raised, or its worker failed: the serial parse's own answer
        out[at] = _serial(texts[at])
    return out


class Parsing:
    """Texts being parsed by worker processes alone (:func:`start`), while the caller does
    something else; :meth:`result` waits for them."""

    def __init__(self, texts: Sequence[str], groups: list[list[tuple[int, str]]],
                 workers: list[subprocess.Popen[bytes]]) -> None:
        self.texts = tuple(texts)
        self._groups = groups
        self._workers = workers

    def result(self) -> list[list[object] | None]:
        """Per text its documents, or None: a part of it raised, or its worker failed (parse
        it again the usual way, which gives the error with its line and column). Once."""
        results: list[list[object] | None] = []
        try:
            for worker, group in zip(self._workers, self._groups, strict=True):
                done = _result(worker, len(group))
                results.extend(done if done is not None else [None] * len(group))
        finally:
            self.close()
        out: list[list[object] | None] = [[] for _ in self.texts]
        for (at, _piece), docs in zip((u for g in self._groups for u in g), results,
                                      strict=True):
            joined = out[at]
            if docs is None or joined is None:
                out[at] = None
            else:
                joined.extend(docs)
        return out

    def close(self) -> None:
        """Stop and reap the workers (any still running: their result is not wanted)."""
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()


def start(texts: Sequence[str], cpus: int | None = None) -> Parsing | None:
    """The texts parsed by worker processes only, one CPU fewer than ``cpus`` (default
    :func:`usable_cpus`; at least one worker): for a caller with other work meanwhile (the
    agent's start imports its modules while the object files are parsed,
    :mod:`vipcast.app.agent_command`). None when the texts are too small to be worth a worker
    (under :data:`MIN_PART` characters) or no process can be started."""
    total = sum(len(t) for t in texts)
    count = max(1, min((usable_cpus() if cpus is None else cpus) - 1, MAX_PARTS,
                       total // MIN_PART))
    if total < MIN_PART:
        return None
    units: list[tuple[int, str]] = []
    for at, text in enumerate(texts):
        units.extend((at, piece) for piece in parts(text, count))
    groups = _deal(units, count, total, head=0)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for group in groups:
            workers.append(_start([piece for _at, piece in group]))
    except OSError:
        for worker in workers:
            worker.kill()
            worker.wait()
        return None
    return Parsing(texts, groups, workers)


def _deal(units: list[tuple[int, str]], count: int, total: int,
          head: int = HEAD_START) -> list[list[tuple[int, str]]]:
    """``units`` in order into at most ``count`` non-empty groups of about equal size, the
    first ``head`` characters bigger when there is more than one text."""
    if len({at for at, _piece in units}) == 1:  # one text: its parts are the groups
        return [[unit] for unit in units]
    share = (total - head) / count
    groups: list[list[tuple[int, str]]] = [[]]
    size = 0
    for unit in units:
        target = share + head if len(groups) == 1 else share
        if groups[-1] and size + len(unit[1]) / 2 > target and len(groups) < count:
            groups.append([])
            size = 0
        groups[-1].append(unit)
        size += len(unit[1])
    return groups


def _serial(text: str) -> list[object] | yaml.YAMLError:
    try:
        return yaml_documents.load_all(text)
    except yaml.YAMLError as exc:
        return exc


def _parsed(piece: str) -> list[object] | None:
    try:
        return yaml_documents.load_all(piece)
    except yaml.YAMLError:
        return None


def _start(pieces: list[str]) -> subprocess.Popen[bytes]:
    """A worker parsing ``pieces`` (handed over with marshal in an unlinked temporary file:
    the worker reads it when it is ready, the caller does not wait on a pipe)."""
    with tempfile.TemporaryFile() as handover:
        handover.write(marshal.dumps(pieces))
        handover.seek(0)
        # the worker imports this very vipcast (the directory this process took it from
        # first), and nothing from the current directory (-P)
        package_root = str(Path(yaml_documents.__file__).resolve().parents[2])
        return subprocess.Popen(
            [sys.executable, "-P", "-c", _WORKER_CODE, package_root], stdin=handover,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _result(worker: subprocess.Popen[bytes], pieces: int) -> list[list[object] | None] | None:
    """The worker's documents per piece (None for a piece that raised); None: the worker
    failed."""
    assert worker.stdout is not None
    with worker.stdout:
        data = worker.stdout.read()
    if worker.wait() != 0 or not data:
        return None
    kind, body = data[:1], data[1:]
    try:
        if kind == MARSHAL:
            results = marshal.loads(body)
        elif kind == PICKLE:
            # our own worker's output, written just now from values the safe loader built
            results = pickle.loads(body)
        else:
            return None
    except (EOFError, ValueError, TypeError, pickle.UnpicklingError):
        return None
    if not isinstance(results, list) or len(results) != pieces:
        return None
    return [r if isinstance(r, list) else None for r in results]
