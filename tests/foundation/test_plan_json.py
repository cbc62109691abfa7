"""``vipcast plan --json`` streams plan_json_bytes (plan_json_chunks as text): the same document
as plan_document."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from vipcast.core.allocation import allocate_spec
from vipcast.core.desired import Backend, NatRule
from vipcast.core.plan import plan_all
from vipcast.core.plan_document import (
    _COMPACT,
    _nat_text,
    nat_document,
    plan_document,
    plan_json_chunks,
)
from vipcast.spec import load_documents

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from alloc_plan import documents


def test_streamed_text_is_the_document() -> None:
    spec = load_documents(documents(300, 6, 5))
    result = allocate_spec(spec)
    plans = plan_all(spec, result.current())
    text = "".join(plan_json_chunks(result, plans))
    assert json.loads(text) == plan_document(result, plans)
    # layout: one entry a line, structure indented
    assert '\n        {"ip": ' in text and text.startswith('{\n  "version": 1,')


def test_empty_sections_and_no_nodes() -> None:
    spec = load_documents(documents(0, 1, 0))
    result = allocate_spec(spec)
    for plans in ({}, plan_all(spec, result.current())):
        text = "".join(plan_json_chunks(result, plans))
        assert json.loads(text) == plan_document(result, plans)


def test_one_node_of_a_random_plan() -> None:
    rng = random.Random(5)
    spec = load_documents(documents(rng.randrange(1, 80), 4, 3))
    result = allocate_spec(spec)
    plans = {k: v for k, v in plan_all(spec, result.current()).items() if k == "node-1"}
    assert json.loads("".join(plan_json_chunks(result, plans))) == plan_document(result, plans)


def test_shared_lists_give_the_same_bytes_as_unshared_ones() -> None:
    """Sections several nodes hold alike (the same values) are joined once: the text is the
    one that plans sharing nothing give."""
    import copy

    spec = load_documents(documents(200, 6, 7))
    result = allocate_spec(spec)
    plans = plan_all(spec, result.current())
    assert len({tuple(map(id, p.l2)) for p in plans.values()}) < len(plans)  # some shared
    apart = {name: copy.deepcopy(plan) for name, plan in plans.items()}  # none shared
    assert "".join(plan_json_chunks(result, plans)) == "".join(plan_json_chunks(result, apart))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20,
)


@given(json_values)
def test_compact_encoder_writes_what_json_encoder_writes(value: object) -> None:
    """The encoder made once gives JSONEncoder(separators=(", ", ": ")).encode's text."""
    want = json.JSONEncoder(separators=(", ", ": "), ensure_ascii=True).encode(value)
    assert _COMPACT(value) == want


backends = st.builds(Backend, ip=st.text(max_size=8), port=st.integers(0, 70000),
                     node=st.none() | st.text(max_size=8), local=st.booleans())
nat_rules = st.builds(
    NatRule, service=st.text(max_size=10), vip=st.text(max_size=10), port=st.integers(0, 70000),
    protocol=st.sampled_from(["TCP", "UDP", "SCTP"]),
    backends=st.lists(backends, max_size=3).map(tuple),
    traffic_policy=st.sampled_from(["Cluster", "Local"]),
    source_ranges=st.lists(st.text(max_size=8), max_size=3).map(tuple),
)


@given(nat_rules)
def test_nat_rule_text_is_its_document_encoded(rule: NatRule) -> None:
    """A NAT rule's text, put together from its fields, is its document as JSON (any text,
    escapes and non-ASCII included)."""
    assert _nat_text(rule) == _COMPACT(nat_document(rule))
    assert json.loads(_nat_text(rule)) == nat_document(rule)


def test_the_bytes_are_the_ones_written_before() -> None:
    """The document's exact bytes on two sets, as the tree of d2d510e wrote them (text pieces
    through stdout's text layer) -- bench/plan_json.py checks the 10,000-service set so."""
    import hashlib

    from vipcast.core.plan_document import plan_json_bytes
    from vipcast.core.weights import weighted

    want = {(300, 6, 5): ("16247e5afafb1cf94482674909b33ec73efe0f4eb012a241a61b4401d1d97512",
                          969404),
            (120, 4, 7): ("1891cdb4b5e0d61a82dd1c3267141208177473cb2fb822d308342da50ad17011",
                          528487)}
    for sizes, (sha, size) in want.items():
        spec = load_documents(documents(*sizes))
        result = allocate_spec(spec)
        data = b"".join(plan_json_bytes(result, weighted(spec, plan_all(spec, result.current()))))
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (sha, size)


def _plan_of(services: int, pools: int, nodes: int) -> tuple[object, object]:
    from vipcast.core.weights import weighted

    spec = load_documents(documents(services, pools, nodes))
    result = allocate_spec(spec)
    return result, weighted(spec, plan_all(spec, result.current()))


def test_pieces_are_the_bytes_and_lists_end_without_a_separator() -> None:
    """The pieces written with ``os.writev`` are the document's bytes: a node's list is its
    entries' texts each followed by the separator, the last one a view without it."""
    from vipcast.core.plan_document import plan_json_bytes, plan_json_pieces

    result, plans = _plan_of(120, 4, 7)
    groups = list(plan_json_pieces(result, plans))  # type: ignore[arg-type]
    data = b"".join(b"".join(group) for group in groups)
    assert data == b"".join(plan_json_bytes(result, plans))  # type: ignore[arg-type]
    assert b",\n        \n" not in data and b",\n      ]" not in data
    views = [p for group in groups for p in group if isinstance(p, memoryview)]
    assert views and all(not bytes(v).endswith(b",\n        ") for v in views)


def test_short_writes_are_completed_in_order(monkeypatch: object, tmp_path: Path) -> None:
    """``os.writev`` may write less than asked (a signal during a write to a pipe): the rest
    follows, in order, and the file holds the whole document."""
    import os

    import pytest

    from vipcast.app import document_writer
    from vipcast.core.plan_document import plan_json_bytes, plan_json_pieces

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    result, plans = _plan_of(120, 4, 7)
    real = os.writev
    cut: list[int] = []

    def short(fd: int, buffers: list[bytes]) -> int:  # the first few bytes of the first buffer
        head = bytes(buffers[0])[: max(1, len(buffers[0]) // 3)]
        cut.append(len(head))
        return real(fd, [head])

    target = tmp_path / "plan.json"
    with open(target, "wb") as out:
        monkeypatch.setattr(document_writer.os, "writev", short)
        document_writer.write_document(plan_json_pieces(result, plans), out)  # type: ignore[arg-type]
    want = b"".join(plan_json_bytes(result, plans))  # type: ignore[arg-type]
    assert cut and target.read_bytes() == want
