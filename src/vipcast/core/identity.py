"""Which objects of a sequence are new or gone, by identity (pure).

The pipeline hands unchanged values on as the very same objects (the file source keeps a
file's objects, the planner keeps unchanged routes), so what changed between two versions of
a long tuple is found by identity. Most of two such versions is the same objects in the same
places: the common head and tail are skipped at C speed (``map(operator.is_, ...)``) and only
the middle is compared by identity sets.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from itertools import compress
from typing import TypeVar

T = TypeVar("T")


def _common_head(old: Sequence[object], new: Sequence[object]) -> int:
    same = list(map(operator.is_, old, new))
    try:
        return same.index(False)
    except ValueError:
        return len(same)


def identity_diff(old: Sequence[T], new: Sequence[T]) -> tuple[list[T], list[T]]:
    """``(gone, added)``: the objects of ``old`` not in ``new`` and of ``new`` not in ``old``,
    by identity, each in its sequence's order. The same as comparing ``id`` sets of the
    whole sequences when no object appears twice in one of them."""
    head = _common_head(old, new)
    if head == len(old) == len(new):
        return [], []
    old_rest, new_rest = old[head:], new[head:]
    tail = _common_head(old_rest[::-1], new_rest[::-1])
    tail = min(tail, len(old_rest), len(new_rest))
    old_mid = old_rest[: len(old_rest) - tail]
    new_mid = new_rest[: len(new_rest) - tail]
    old_ids = set(map(id, old_mid))
    new_ids = set(map(id, new_mid))
    gone = list(compress(old_mid, [i not in new_ids for i in map(id, old_mid)]))
    added = list(compress(new_mid, [i not in old_ids for i in map(id, new_mid)]))
    return gone, added
