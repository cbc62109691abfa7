"""The assignment state file kept beside object files, so runs from files keep their IPs.

For a directory ``cfg/`` the state is ``cfg/.vipcast-state.json``; for a file ``cfg/x.yaml`` it
is ``cfg/.x.yaml.vipcast-state.json``. The leading dot keeps the loader from reading it as an
object file. Format (version 1)::

    {"version": 1, "assignments": {"namespace/name": ["192.0.2.1", "2001:db8::1"], ...}}

Writes are atomic (temporary file in the same directory, fsync, rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STATE_SUFFIX = ".vipcast-state.json"
VERSION = 1


def state_path(config: str | Path) -> Path:
    """Where the state of the config at ``config`` (a file or a directory) lives."""
    path = Path(config)
    if path.is_dir():
        return path / STATE_SUFFIX
    return path.with_name(f".{path.name}{STATE_SUFFIX}")


@dataclass(frozen=True)
class StateRead:
    """What a state file held; ``problem`` says why it was ignored (unreadable, bad format)."""

    assignments: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    problem: str | None = None
    exists: bool = False


def read_state(path: str | Path) -> StateRead:
    """The assignments in ``path``; a missing file is an empty state, a broken one a problem."""
    path = Path(path)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return StateRead()
    except OSError as exc:
        return StateRead(problem=f"cannot read {path}: {exc.strerror}")
    except UnicodeDecodeError:
        return StateRead(problem=f"{path} is not UTF-8 text; ignored", exists=True)
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        return StateRead(problem=f"{path} is not JSON ({exc.msg}); ignored", exists=True)
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return StateRead(problem=f"{path}: unknown state format; ignored", exists=True)
    entries = doc.get("assignments")
    if not isinstance(entries, dict):
        return StateRead(problem=f"{path}: 'assignments' is not an object; ignored", exists=True)
    out: dict[str, tuple[str, ...]] = {}
    for key, ips in entries.items():
        if isinstance(key, str) and isinstance(ips, list) and all(isinstance(i, str) for i in ips):
            out[key] = tuple(ips)
    return StateRead(out, exists=True)


def write_state(path: str | Path, assignments: Mapping[str, Sequence[str]]) -> None:
    """Replace the state at ``path`` atomically with ``assignments``."""
    path = Path(path)
    doc = {
        "version": VERSION,
        "assignments": {k: list(v) for k, v in sorted(assignments.items()) if v},
    }
    data = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
