"""Pauses of the cyclic garbage collector around the agent's big computations, and freeing a
big value a little at a time (both measured: bench/README.md, "The node pipeline").

A 10,000-service config is millions of acyclic objects: a collection while they are built
traces them again and again, and freeing them at once is one C-level cascade that holds the
GIL for ~0.1 s.
"""

from __future__ import annotations

import gc
from dataclasses import fields
from typing import Any

from vipcast.app.agent_values import Desired, Planner
from vipcast.core.desired import NodePlan
from vipcast.spec.load import Spec

#: objects freed per step by :func:`release_gradually` (one step is one C-level deallocation
#: cascade, which holds the GIL from start to end)
RELEASE_STEP = 64


def run_planner(planner: Planner, spec: Spec, node: str) -> NodePlan:
    """``planner(spec, node)`` with the cyclic GC paused while it runs.

    Planning is a pure computation that builds tens of thousands of acyclic values (reference
    counting frees them); without the pause, the collector traces them again and again while
    they are built. It runs synchronously, so nothing else allocates meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return planner(spec, node)
    finally:
        if enabled:
            gc.enable()


def release_gradually(parts: list[Any]) -> None:
    """Drop ``parts`` (the last references to the pieces of a big value) a few at a time.

    Freeing a big tree at once (a 10,000-service Spec, the raw YAML documents) is one
    deallocation cascade in C that holds the GIL for ~0.1 s, even in a worker thread; freed in
    steps of :data:`RELEASE_STEP` objects, the interpreter can switch threads between steps.
    """
    while parts:
        del parts[-RELEASE_STEP:]


def desired_parts(desired: Desired) -> list[Any]:
    """References to every object of ``desired``'s spec and plan tuples, ``desired`` last."""
    parts: list[Any] = []
    for holder in (desired.spec, desired.plan):
        for item in fields(holder):
            value = getattr(holder, item.name)
            if isinstance(value, tuple):
                parts.extend(value)
    parts.append(desired)
    return parts


