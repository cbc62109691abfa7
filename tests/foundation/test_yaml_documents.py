"""The fast document loader gives what ``yaml.load_all`` with PyYAML's safe loader (libyaml's,
as the file source used before) gives: the same values (and shared values where YAML aliases
them), and the same error otherwise."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from vipcast.sources.yaml_documents import load_all

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def reference(text: str) -> list[object]:
    return list(yaml.load_all(text, Loader=LOADER))


def same(text: str) -> list[object] | None:
    """The fast loader's documents, checked against the reference (None: both refused)."""
    try:
        want = reference(text)
    except yaml.YAMLError as exc:
        with pytest.raises(type(exc)) as refused:
            load_all(text)
        assert str(refused.value) == str(exc)
        return None
    got = load_all(text)
    # repr: NaN != NaN, and repr shows recursive values the same way
    assert repr(got) == repr(want)
    assert [type(x) for x in got] == [type(x) for x in want]
    return got


# plain scalars that YAML 1.1 resolves to other types (PyYAML's implicit resolvers)
TRICKY = ["yes", "No", "on", "OFF", "~", "null", "Null", "", "0o17", "017", "0x1F", "0b101",
          "1_000", "1:20", "190:20:30.15", "1e3", "1.5e3", "-.inf", ".NaN", "+12", "-0",
          "2001-12-14", "2001-12-14t21:59:43.10-05:00", "=", "<<", "8080", "10.0.0.1",
          "2001:db8::1", "198.18.0.0/15", "'quoted'", "a: b", "- x", "#x", "x #y", "@x",
          "true", "False", "3.", ".5", "1,000", "0.1.2", "-", "?", "!x", "&a", "*a", "|", ">"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(TRICKY),
    st.text(max_size=12), st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(TRICKY), st.integers()),
                        inner, max_size=4),
    ),
    max_leaves=25,
)


@given(st.lists(values, min_size=1, max_size=4), st.sampled_from([None, True, False]))
def test_generated_documents_load_as_safe_load_all(docs: list[Any], flow: bool | None) -> None:
    same(yaml.safe_dump_all(docs, default_flow_style=flow, allow_unicode=True))


@given(st.lists(values, min_size=1, max_size=3))
def test_json_documents_load_as_safe_load_all(docs: list[Any]) -> None:
    import json

    try:
        text = "\n---\n".join(json.dumps(d) for d in docs)
    except (TypeError, ValueError):  # bytes, non-string keys: not JSON
        return
    same(text)


HAND_WRITTEN = [
    # aliases: the same value twice, and a value that contains itself
    "a: &x {p: 1}\nb: *x\nc: &l [1, 2]\nd: *l\n",
    "&r [1, *r]\n",
    "&m {self: *m}\n",
    # merge keys, value keys: the whole constructor's business
    "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",
    "- <<: [{a: 1}, {b: 2}]\n  c: 3\n",
    "= : value\n",
    # explicit tags
    "!!set {a, b}\n",
    "!!omap [a: 1, b: 2]\n",
    "!!pairs [a: 1, a: 2]\n",
    "x: !!str 80\ny: !!int '80'\nz: !!float '1'\nw: !!binary aGVsbG8=\n",
    "t: 2001-12-14 21:59:43.10 -5\nd: 2002-12-14\n",
    "!!map {a: 1}\n",
    "!!seq [1]\n",
    # keys that are not strings; duplicate keys (the last wins)
    "1: a\n2.5: b\nnull: c\ntrue: d\n",
    "a: 1\na: 2\n",
    "? [1, 2]\n: x\n",
    "? {a: 1}\n: x\n",
    # documents, empty ones, comments
    "---\n---\na: 1\n...\n---\n# only a comment\n",
    "",
    "kind: List\nitems:\n- {kind: Service}\n",
    # errors
    "a: [1, 2\n",
    "a: !custom 1\n",
    "!!str [1]\n",
    "!!int {a: 1}\n",
    "a: *undefined\n",
    "a: b: c\n",
    "\t- tab\n",
]


@pytest.mark.parametrize("text", HAND_WRITTEN)
def test_hand_written_documents_load_as_safe_load_all(text: str) -> None:
    same(text)


def test_errors_are_the_reference_errors() -> None:
    for text in ("a: [1, 2\n", "a: !custom 1\n", "!!str [1]\n", "a: *undefined\n"):
        assert same(text) is None


def test_aliases_share_one_value() -> None:
    doc = load_all("a: &x {p: [1]}\nb: *x\n")[0]
    assert isinstance(doc, dict)
    assert doc["a"] is doc["b"]
    recursive = load_all("&r [1, *r]\n")[0]
    assert isinstance(recursive, list)
    assert recursive[1] is recursive


def test_a_path_resolver_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a path resolver added to the safe loader (yaml.add_path_resolver), PyYAML's own
    loader reads the text: the fast one assumes there is none."""
    from vipcast.sources import yaml_documents

    base = yaml_documents._BASE
    monkeypatch.setattr(base, "yaml_path_resolvers", {})  # this test's own, undone after it
    yaml.add_path_resolver("tag:yaml.org,2002:int", ["a"], str, Loader=base)
    text = "a: '12'\nb: '12'\n"
    assert reference(text) == [{"a": 12, "b": "12"}]  # the resolver's tag, by path
    assert load_all(text) == [{"a": 12, "b": "12"}]
