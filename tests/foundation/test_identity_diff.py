"""identity_diff against comparing identity sets of the whole sequences."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vipcast.core.identity import identity_diff


class Obj:
    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Obj({self.n})"


POOL = [Obj(i) for i in range(12)]


def reference(old: list[Obj], new: list[Obj]) -> tuple[list[Obj], list[Obj]]:
    old_ids, new_ids = {id(x) for x in old}, {id(x) for x in new}
    return [x for x in old if id(x) not in new_ids], [x for x in new if id(x) not in old_ids]


@given(st.permutations(POOL), st.lists(st.sampled_from(["keep", "drop", "swap", "add"]),
                                      min_size=12, max_size=12))
def test_identity_diff_is_the_set_comparison(order: list[Obj], edits: list[str]) -> None:
    old = order[:8]
    new: list[Obj] = []
    spare = iter(order[8:] + [Obj(100 + i) for i in range(12)])
    for item, edit in zip(old, edits, strict=False):
        if edit == "keep":
            new.append(item)
        elif edit == "swap":
            new.append(next(spare))
        elif edit == "add":
            new.extend((item, next(spare)))
    got = identity_diff(tuple(old), tuple(new))
    assert got == reference(old, new)
    assert identity_diff(tuple(new), tuple(old)) == reference(new, old)


def test_equal_values_that_are_other_objects_count_as_changed() -> None:
    a, b, same = [1], [1], [2]
    assert identity_diff([same, a], [same, b]) == ([a], [b])
