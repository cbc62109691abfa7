"""The plain block YAML reader (``vipcast.sources.yaml_block``) gives what PyYAML's safe loader
gives, or nothing (None) so that PyYAML reads the text: on block YAML written in the styles
object files are written in (indents of 1-4, sequences indented under their key or not,
entries on their ``- `` line or below it, plain, quoted and typed scalars, comments, blank
lines, trailing blanks), on texts damaged line by line (a line indented differently, dropped or
doubled), on documents of one shape met many times, and on hand-written corner cases."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from vipcast.sources import yaml_block, yaml_documents

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def reference(text: str) -> list[object] | yaml.YAMLError:
    try:
        return list(yaml.load_all(text, Loader=LOADER))
    except yaml.YAMLError as exc:
        return exc


def check(text: str) -> list[object] | None:
    """The block reader's documents (None: it left the text to PyYAML), checked against the
    reference; and the loader the sources use gives the reference's values or error."""
    want = reference(text)
    got = yaml_block.load_all(text)
    if isinstance(want, yaml.YAMLError):
        assert got is None, f"read {text!r} that PyYAML refuses ({want})"
        with pytest.raises(type(want)) as refused:
            yaml_documents.load_all(text)
        assert str(refused.value) == str(want)
        return None
    if got is not None:
        # repr: NaN != NaN; types: 1 == 1.0 == True
        assert repr(got) == repr(want), text
        assert _types(got) == _types(want), text
    assert repr(yaml_documents.load_all(text)) == repr(want)
    return got


def _types(value: object) -> object:
    if isinstance(value, dict):
        return {repr(k): (type(k), _types(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)


# scalars whose plain text YAML 1.1 types (PyYAML's implicit resolvers), or that end or break
# a plain scalar, or that look like structure
TRICKY = ["yes", "No", "on", "OFF", "y", "n", "~", "null", "Null", "NULL", "0o17", "017",
          "0x1F", "0b101", "1_000", "1:20", "190:20:30.15", "1e3", "1.5e3", "-.inf", ".NaN",
          "+12", "-0", "-1", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "8080", "10.0.0.1",
          "2001:db8::1", "198.18.0.0/15", "true", "False", "3.", ".5", "1,000", "0.1.2", "a b",
          "a  b", "x:y", "x:", "a: b", "a #b", "a#b", "[]", "{}", "[1]", "{a: 1}", "-", "- x",
          "--x", "---", "...", "a'b", 'a"b', "@x", "%x", "!x", "&a", "*a", "|", ">", "?",
          "? x", "=", "<<", "http://h/p?q=1&r=2", "svc-1", "ns/name", ".", "_x", "a,b",
          "kubernetes.io/service-name"]
KEYS = ["a", "b", "name", "kind", "port", "80", "1", "0x10", "true", "yes", "null", "~", "a.b",
        "k8s.io/x", "a-b", "_", "0.5", "2001-12-14", "a b", "-a", "<<", "="]

#: what object files mostly hold
SIMPLE = ["svc-1", "default", "TCP", "LoadBalancer", "10.0.0.1", "IPv4", "app", "x", "80",
          "true", "Local", "198.18.0.0/24", "2001:db8::/64", "node-1"]
scalars = st.one_of(st.sampled_from(SIMPLE), st.sampled_from(SIMPLE), st.sampled_from(SIMPLE),
                    st.sampled_from(TRICKY), st.integers(-5, 100_000).map(str),
                    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8))
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=14,
)


@st.composite
def styled(draw: st.DrawFn, tree: object) -> str:
    """``tree`` written as block YAML in randomly chosen styles (its leaves are scalar texts:
    written plain, single- or double-quoted)."""
    indent = draw(st.integers(1, 4))
    indentless = draw(st.booleans())
    out: list[str] = []

    def scalar(text: str) -> str:
        style = draw(st.sampled_from(["plain", "plain", "single", "double"]))
        if style == "single":
            return "'" + text.replace("'", "''") + "'"
        if style == "double" and '"' not in text and "\\" not in text:
            return '"' + text + '"'
        return text

    def extra() -> None:
        if draw(st.integers(0, 19)) == 0:
            out.append(draw(st.sampled_from(["", "  ", "# c", "   # c: d", "#"])))

    def entries(value: list[object], at: int) -> None:
        for item in value:
            extra()
            dash = " " * at + "-" + " " * draw(st.integers(1, 3))
            if isinstance(item, dict) and item and draw(st.booleans()):
                inner = len(dash)
                for number, (key, sub) in enumerate(item.items()):
                    write(sub, inner, (dash if number == 0 else " " * inner) + f"{key}: ")
            else:
                write(item, at, dash)

    def write(value: object, col: int, head: str) -> None:
        """``value`` after ``head`` (the key or dash part of its line), its block at ``col``."""
        trail = draw(st.sampled_from(["", "", "", "", "", "", " ", "  "]))
        if isinstance(value, dict) and value:
            out.append(head.rstrip() + trail)
            for key, item in value.items():
                extra()
                write(item, col + indent, " " * (col + indent) + f"{key}: ")
        elif isinstance(value, list) and value:
            out.append(head.rstrip() + trail)
            entries(value, col if indentless and head.strip().endswith(":") else col + indent)
        elif isinstance(value, (dict, list)):
            out.append(head + ("{}" if isinstance(value, dict) else "[]") + trail)
        elif value is None:
            out.append(head.rstrip() + trail)
        else:
            assert isinstance(value, str)
            out.append(head + scalar(value) + trail)

    if isinstance(tree, dict) and tree:
        for key, item in tree.items():
            extra()
            write(item, 0, f"{key}: ")
    elif isinstance(tree, list) and tree:
        entries(tree, 0)
    else:
        out.append(str(tree))
    return "\n".join(out) + "\n"


documents = st.lists(st.dictionaries(st.sampled_from(KEYS), trees, min_size=1, max_size=4)
                     | st.lists(trees, min_size=1, max_size=3), min_size=1, max_size=3)


@st.composite
def streams(draw: st.DrawFn) -> str:
    docs = draw(documents)
    texts = [draw(styled(doc)) for doc in docs]
    start = draw(st.sampled_from(["", "---\n", "--- \n", "# head\n---\n"]))
    return start + "---\n".join(texts) + draw(st.sampled_from(["", "---\n", "\n"]))


@settings(max_examples=150, deadline=None)
@given(streams())
def test_styled_block_yaml_reads_as_safe_load_all(text: str) -> None:
    check(text)


@settings(max_examples=150, deadline=None)
@given(streams(), st.data())
def test_damaged_block_yaml_reads_as_safe_load_all(text: str, data: st.DataObject) -> None:
    """A line indented more or less, dropped, or doubled: the reader reads it as PyYAML does,
    or leaves it to PyYAML (which gives the same values or the same error)."""
    lines = text.split("\n")
    at = data.draw(st.integers(0, len(lines) - 1))
    how = data.draw(st.sampled_from(["deeper", "shallower", "drop", "double", "tab"]))
    line = lines[at]
    if how == "deeper":
        lines[at] = " " * data.draw(st.integers(1, 3)) + line
    elif how == "shallower":
        lines[at] = line[data.draw(st.integers(1, 3)):] if line.startswith(" ") else line
    elif how == "drop":
        del lines[at]
    elif how == "double":
        lines.insert(at, line)
    else:
        lines[at] = line.replace(" ", "\t", 1)
    check("\n".join(lines))


SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: ns{n}
  annotations:
    vipcast.io/allow-shared-ip: {share}
spec:
  ports:
  - name: http
    port: {port}
    protocol: {proto}
  selector: {selector}
  externalIPs: []
  type: LoadBalancer
"""


def test_documents_of_one_shape_are_read_with_their_own_values() -> None:
    """The second and later documents of a shape are built by one function: each gets its own
    values and its own mutable ones."""
    values = [("svc-0", 0, "share", 80, "TCP", "{}"), ("yes", 1, "'8080'", "0x10", "UDP", "{}"),
              ("svc-2", 2, "null", "~", "SCTP", "{}"), ("'svc-3'", 3, "on", "1:20", "TCP", "{}")]
    text = "---\n".join(SERVICE.format(name=a, n=b, share=c, port=d, proto=e, selector=f)
                        for a, b, c, d, e, f in values)
    docs = check(text)
    assert docs is not None, "the block reader read these"
    assert [d["metadata"]["name"] for d in docs] == ["svc-0", True, "svc-2", "svc-3"]  # type: ignore[index]
    assert [d["spec"]["ports"][0]["port"] for d in docs] == [80, 16, None, 80]  # type: ignore[index]
    selectors = [d["spec"]["selector"] for d in docs]  # type: ignore[index]
    lists = [d["spec"]["externalIPs"] for d in docs]  # type: ignore[index]
    assert len({id(s) for s in selectors}) == 4 and len({id(x) for x in lists}) == 4


def test_object_files_written_by_safe_dump_are_read_by_the_block_reader() -> None:
    """What bench/alloc_plan.py and ``yaml.safe_dump_all`` write is read here, not by PyYAML
    (the point of the reader: if this fails, files are read at PyYAML's speed)."""
    docs = [{"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": f"svc-{i}", "namespace": "default",
                          "annotations": {"vipcast.io/ips": "10.0.0.1"}},
             "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80 + i}],
                      "ipFamilies": ["IPv4", "IPv6"], "selector": {"app": "x"},
                      "allocateLoadBalancerNodePorts": False, "externalIPs": []}}
            for i in range(20)]
    text = yaml.safe_dump_all(docs)
    assert yaml_block.load_all(text) == docs
    assert check(text) == docs


HAND_WRITTEN = [
    "", "\n", "# only a comment\n", "---\n", "---", "--- \n---\n", "a: 1\n---\n", "---\na: 1",
    "a: 1\n---\n\n# c\n---\nb: 2\n", "a:\nb: 1\n", "a:\n- 1\n- 2\nb:\n  - 3\n",
    "- a: 1\n  b: 2\n- - x\n", "- a: 1\n b: 2\n", "a: 1\n  b: 2\n", "a:\n  b\n",
    "a: x\n  y\n", "- x\n  y\n", "- x\n- y\n  z: 1\n", "a:\n  - x\n  b: 1\n",
    "a:\n  b: 1\n c: 2\n", "  a: 1\n", "a: 'x''y'\n", "a: 'x'y'\n", 'a: "x\\ty"\n',
    'a: "x"\n', "a: 'x'  \n", "a: x  \n", "a: x # c\n", "a: x#c\n", "a: b:\n", "a: b: c\n",
    "a: -1\n", "a: -x\n", "a: - x\n", "a: [1]\n", "a: {}\n", "- []\n- {}\n", "-\n  a: 1\n",
    "-\n-\n", "- \n", "a: 1\na: 2\n", "1: a\n01: b\n", "true: a\nyes: b\n", "null: 1\n~: 2\n",
    "a: 2001-12-14\nb: 2001-12-14 21:59:43.10 -5\n", "a: 0o17\nb: 017\nc: 1_0\nd: 1:20\n",
    "a: .nan\nb: -.inf\nc: 1e3\nd: 1.5e3\n", "...\n", "a: 1\n...\n", "%YAML 1.1\n---\na: 1\n",
    "a: 1\r\n", "a:\t1\n", "a: caf\u00e9\n", "\ufeffa: 1\n", "a: &x 1\nb: *x\n", "a: !!str 1\n",
    "a: |\n  x\n", "a: >\n  x\n", "? a\n: b\n", "'a': 1\n", "a b: 1\n", "a:1\n", "---a\n",
    "--- a\n", "a: ---\n", "a: ...\n", "- - - x\n", "a:\n\n  b: 1\n\n  c: 2\n",
    "a:\n  # c\n  b: 1\n", "a:\n- b: 1\n  c:\n  - 2\n  d: 3\ne: 4\n", "x:\n   - 1\n   - 2\n",
    "a: 1\n - b\n", "- a\n -b\n",
]


@pytest.mark.parametrize("text", HAND_WRITTEN)
def test_hand_written_texts(text: str) -> None:
    check(text)


def test_the_common_corner_cases_are_read_here() -> None:
    """Not left to PyYAML: comments, blank lines, quoted and typed values, empty collections,
    both sequence indents (a reader that refused them all would pass every other test)."""
    for text in ("a: 1\n---\n", "a:\n- 1\n- 2\nb:\n  - 3\n", "a:\n  # c\n  b: 1\n",
                 "a: 'x''y'\nb: \"z\"\nc: []\nd: {}\ne: ~\nf: 0x10\n", "-\n  a: 1\n"):
        assert yaml_block.load_all(text) is not None, text


def test_a_plan_read_from_yaml_is_the_pinned_one_on_every_reading_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 120-service set written as YAML as bench/plan_json.py writes it, read by load_paths:
    the plan's bytes are the ones test_plan_json pins, read by the block reader in parts on
    worker processes, serially, and by PyYAML (the block reader refusing every text)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from alloc_plan import documents

    from vipcast.core.allocation import allocate_spec
    from vipcast.core.plan import plan_all
    from vipcast.core.plan_document import plan_json_bytes
    from vipcast.core.weights import weighted
    from vipcast.sources import yaml_split
    from vipcast.sources.files import load_paths

    text = yaml.safe_dump_all([doc for _, doc in documents(120, 4, 7)])
    assert yaml_block.load_all(text) is not None
    path = tmp_path / "objects.yaml"
    path.write_text(text)

    def plan_bytes() -> tuple[str, int]:
        spec = load_paths([path])
        result = allocate_spec(spec)
        data = b"".join(plan_json_bytes(result, weighted(spec, plan_all(spec, result.current()))))
        return hashlib.sha256(data).hexdigest(), len(data)

    want = ("1891cdb4b5e0d61a82dd1c3267141208177473cb2fb822d308342da50ad17011", 528487)
    monkeypatch.setattr(yaml_split, "MIN_PART", 8_000)  # parts on worker processes
    monkeypatch.setattr(yaml_split, "HEAD_START", 0)
    assert plan_bytes() == want
    monkeypatch.setattr(yaml_split, "MIN_PART", 10**9)  # one part, this process
    assert plan_bytes() == want
    monkeypatch.setattr(yaml_block, "load_all", lambda text: None)
    assert plan_bytes() == want



def test_documents_differing_only_in_a_key_of_a_value_line_keep_their_keys() -> None:
    """Documents whose lines differ only in the key of a line with a value are not one shape:
    none is built with another's keys (found by tests/bgp/test_start_cache.py, where
    ``vipcast.io/allow-shared-ip: k`` was read as ``vipcast.io/health-check: k``)."""
    import random

    rng = random.Random(0)
    keys = ["vipcast.io/health-check", "vipcast.io/allow-shared-ip", "vipcast.io/pool"]
    docs = []
    for i in range(60):
        annotations = {"vipcast.io/loadBalancerIPs": f"198.18.0.{i}"}
        annotations[rng.choice(keys)] = rng.choice(["k", "http:/hz", "bogus"])
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": f"s{i}", "namespace": "d", "annotations": annotations},
                     "spec": {"type": "LoadBalancer",
                              "ports": [{"port": rng.choice([80, 443]), "targetPort": 8080}]}})
    text = yaml.safe_dump_all(docs, sort_keys=False)
    assert yaml_block.load_all(text) == list(yaml.safe_load_all(text))
