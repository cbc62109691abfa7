"""``vipcast check-config``, ``plan`` and ``explain`` composed: the object files read through
``sources.files`` and the allocation made with the state file kept beside them
(``sources.state``), so that a second run gives the same addresses. The commands
(``cli/config_cmds.py``) show what these return."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vipcast.alloc import AllocationResult
from vipcast.core.allocation import allocate_spec
from vipcast.sources.files import load_paths
from vipcast.sources.state import read_state, state_path, write_state
from vipcast.spec import Spec


def load_config(paths: Sequence[Path]) -> Spec:
    """The spec of the object files and directories ``paths``; :class:`vipcast.spec.SpecError`
    lists every problem (file, object, field)."""
    return load_paths(list(paths))


def allocate_with_state(
    path: Path, spec: Spec, state: Path | None, *, save: bool
) -> tuple[AllocationResult, list[str]]:
    """Allocate ``spec`` with the state file ``state`` (default: the one beside ``path``);
    the result and the warnings to show (an unreadable state file, one that could not be
    written). With ``save``, a changed (or missing) state file is written."""
    where = state or state_path(path)
    stored = read_state(where)
    warnings = [stored.problem] if stored.problem else []
    result = allocate_spec(spec, stored.assignments)
    if save and (result.current() != dict(stored.assignments) or not stored.exists):
        try:
            write_state(where, result.current())
        except OSError as exc:
            warnings.append(f"could not write the state file {where}: {exc.strerror}")
    return result, warnings


def old_state_file(path: Path, against: Path, state: Path | None) -> Path:
    """The state file for the old config of ``plan --against``: ``state`` when given, else the
    one beside ``against`` when it exists, else the one beside ``path`` (the new config)."""
    old_state = state or state_path(against)
    if not read_state(old_state).exists:
        old_state = state_path(path)
    return old_state
