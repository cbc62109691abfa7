"""The block reader's shape memo (``vipcast.sources.yaml_block``): a text of many documents
that share a structure and differ in any key or value is read as PyYAML's safe loader reads
it. Each example is one base document and variants of it in one text: keys renamed, scalars
changed, so that documents of one shape (and of shapes that differ only in a key) meet the
memo. A memo keyed on too little (the values' keys once) fails here."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.foundation.test_yaml_block import check

KEYS = ["a", "b", "name", "namespace", "ports", "port", "spec", "metadata", "annotations",
        "allow-shared-ip", "health-check", "x.io/y", "on", "yes", "1", "null", "ip"]  # fmt: skip
SCALARS = ["1", "0", "true", "no", "on", "null", "~", "10.0.0.1", "2001:db8::1", "abc", "a-b",
           "TCP", "x:y", "1:2", "12:30:00", "'q'", '"d"', "[]", "{}", "1.5", "2026-01-01",
           "'it''s'", "a b", "-1", ".5", "0x10"]  # fmt: skip

Tree = tuple[str, object]


def tree(r: random.Random, depth: int) -> Tree:
    roll = r.random()
    if depth > 3 or roll < 0.55:
        return ("s", r.choice(SCALARS))
    if roll < 0.8:
        return ("m", [(r.choice(KEYS), tree(r, depth + 1)) for _ in range(r.randint(0, 4))])
    return ("l", [tree(r, depth + 1) for _ in range(r.randint(0, 4))])


def variant(r: random.Random, t: Tree) -> Tree:
    kind, body = t
    if kind == "s":
        return ("s", r.choice(SCALARS)) if r.random() < 0.5 else t
    if kind == "m":
        assert isinstance(body, list)
        return ("m", [(r.choice(KEYS) if r.random() < 0.2 else k, variant(r, v)) for k, v in body])
    assert isinstance(body, list)
    return ("l", [variant(r, v) for v in body])


def lines(t: Tree, indent: int, step: int, under: bool, first: str | None = None) -> list[str]:
    """Block YAML of ``t`` at ``indent``; ``under``: sequences indented under their key;
    ``first``: the prefix of a mapping's first line (a ``- `` entry's)."""
    kind, body = t
    pad, out = " " * indent, []
    assert isinstance(body, list)
    if kind == "m":
        for i, (key, sub) in enumerate(body):
            prefix = first if i == 0 and first is not None else pad
            if sub[0] == "s":
                out.append(f"{prefix}{key}: {sub[1]}")
            elif not sub[1]:
                out.append(f"{prefix}{key}: " + ("{}" if sub[0] == "m" else "[]"))
            else:
                out.append(f"{prefix}{key}:")
                deeper = indent + (step if sub[0] == "m" or under else 0)
                out += lines(sub, deeper, step, under)
    else:
        for sub in body:
            if sub[0] == "s":
                out.append(f"{pad}- {sub[1]}")
            elif not sub[1]:
                out.append(f"{pad}- " + ("{}" if sub[0] == "m" else "[]"))
            elif sub[0] == "m":
                out += lines(sub, indent + 2, step, under, first=pad + "- ")
            else:
                out.append(f"{pad}-")
                out += lines(sub, indent + 2, step, under)
    return out


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_documents_of_one_structure_with_other_keys_and_values(r: random.Random) -> None:
    base: Tree = ("m", [(r.choice(KEYS), tree(r, 1)) for _ in range(r.randint(1, 5))])
    documents = [base] + [variant(r, base) for _ in range(r.randint(1, 6))]
    step, under = r.choice([1, 2, 3, 4]), r.random() < 0.5
    text = "---\n".join("\n".join(lines(d, 0, step, under)) + "\n" for d in documents)
    check(text)
