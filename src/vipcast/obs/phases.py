"""The phases of one command as it runs, reported as one JSON line (``VIPCAST_PHASE_TIMES=1``).

A benchmark of a whole command (``bench/plan_json.py`` runs ``vipcast plan --json``) sees
where each round of the real command went, not a separate measure: the command marks the end
of each phase, and :meth:`PhaseTimer.report` prints, on the stream it was given (stderr), one
JSON object::

    {"phases": {"before the command (start, imports)": {"cpu_s": ...},
                "<label>": {"s": wall, "cpu_s": ..., "minor_faults": ...,
                            "voluntary_switches": ..., "involuntary_switches": ...}, ...},
     "max_rss_kib": ..., "gc_collections": ..., <the caller's extra figures>}

CPU counts the process and the child processes it waited for (the YAML worker); the phases
are in the order they were marked. A timer that is not enabled measures nothing and prints
nothing, so the command's output is the same with and without it.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import time
from collections.abc import Mapping
from typing import Any, TextIO

#: set (to anything but "" or "0") to have ``vipcast plan`` print its phase times to stderr
PHASES_ENV = "VIPCAST_PHASE_TIMES"
#: the first phase: what the interpreter spent before the timer was made (start, imports)
BEFORE = "before the command (start, imports)"


class PhaseTimer:
    """Wall and CPU seconds, page faults and context switches of each phase of a command."""

    def __init__(self, enabled: bool, stream: TextIO) -> None:
        self.enabled = enabled
        self.stream = stream
        self.figures: dict[str, Any] = {}
        self._collections = _gc_collections()
        if enabled:
            self.figures[BEFORE] = {"cpu_s": round(_cpu(), 3)}
        self._last = _now()

    @classmethod
    def from_env(cls, environ: Mapping[str, str], stream: TextIO) -> PhaseTimer:
        """A timer enabled when ``environ`` sets :data:`PHASES_ENV` (not to "" or "0")."""
        return cls(environ.get(PHASES_ENV, "") not in ("", "0"), stream)

    def mark(self, label: str) -> None:
        """The phase since the last mark (or the start) ends here, called ``label``."""
        if not self.enabled:
            return
        now = _now()
        wall, cpu, faults, waits, preempted = (b - a for a, b in zip(self._last, now,
                                                                       strict=True))
        self.figures[label] = {"s": round(wall, 3), "cpu_s": round(cpu, 3),
                               "minor_faults": faults, "voluntary_switches": waits,
                               "involuntary_switches": preempted}
        self._last = now

    def report(self, **extra: object) -> None:
        """Print the phases, the peak RSS, the cyclic collections since the timer was made and
        ``extra`` as one JSON line (nothing when not enabled)."""
        if self.enabled:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            collections = _gc_collections() - self._collections
            print(json.dumps({"phases": self.figures, "max_rss_kib": peak,
                              "gc_collections": collections, **extra}),
                  file=self.stream, flush=True)


def _gc_collections() -> int:
    return sum(int(g["collections"]) for g in gc.get_stats())


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _now() -> tuple[float, float, int, int, int]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return (time.perf_counter(), _cpu(), own.ru_minflt, own.ru_nvcsw, own.ru_nivcsw)
