"""A YAML stream cut at document starts and parsed in parts (worker processes) gives what one
serial parse gives: the same values, the same types, aliases still shared, and for a broken
stream the serial parse's own error (line and column in the whole file)."""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from vipcast.sources import yaml_split
from vipcast.sources.files import parse_bytes
from vipcast.sources.yaml_documents import load_all as serial

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def reference(text: str) -> list[object]:
    return list(yaml.load_all(text, Loader=LOADER))


def joined(text: str, count: int) -> list[object] | None:
    """The parts' documents one after another (None: a part raised)."""
    out: list[object] = []
    for part in yaml_split.parts(text, count, min_part=1):
        try:
            out.extend(serial(part))
        except yaml.YAMLError:
            return None
    return out


def same_in_parts(text: str) -> None:
    """Whatever the number of parts: where every part parses, their documents are the serial
    parse's; where the serial parse raises, some part raises (so load_all goes serial)."""
    try:
        want: list[object] | None = reference(text)
    except yaml.YAMLError:
        want = None
    for count in (2, 3, 5, 40):
        parts = yaml_split.parts(text, count, min_part=1)
        assert "".join(parts) == text
        assert all(p.startswith("---") for p in parts[1:])
        got = joined(text, count)
        if want is None:
            assert got is None, (text, parts)
        elif got is not None:
            assert repr(got) == repr(want), (text, parts)
            assert [type(x) for x in got] == [type(x) for x in want]


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.sampled_from(["---", "--- x", "...", "%YAML 1.1", "a\n---\nb", "#", "yes", "1:20", ""]),
    st.text(max_size=10),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(values, min_size=1, max_size=6), st.sampled_from([None, True, False]),
       st.booleans())
def test_generated_streams_in_parts_are_the_serial_parse(
    docs: list[Any], flow: bool | None, explicit_end: bool
) -> None:
    same_in_parts(yaml.safe_dump_all(docs, default_flow_style=flow, explicit_start=True,
                                     explicit_end=explicit_end, allow_unicode=True))


# lines that look like document starts (or are) in every place YAML allows them
TRICKY = [
    "a: |\n  x\n  ---\n  y\n---\nb: 1\n",               # '---' inside a block scalar
    "a: |\n x\n---\nb: |\n  ---\n",                      # the scalar ends at the real one
    "--- |\n foo\n---\nbar\n",                           # root block scalars
    "--- >\n  folded\n\n---\n--- |-\n",
    "a: \"multi\n---\nline\"\n---\nb: 1\n",             # a quoted scalar across '---': error
    "a: 'multi\n---\nline'\n",
    "a: [1,\n---\n2]\n---\nb: 1\n",                      # a flow collection across it: error
    "{a: 1,\n---\n}\n",
    "a: plain\n continued\n---\nb: 1\n",               # a plain scalar ends before it
    "plain\n---x\n---\n---y\n",                          # '---x' is a scalar
    "---\n...\n---\n...\n",                              # explicit ends, empty documents
    "---\n---\n---\n",
    "a: 1\n...\nb: 2\n---\nc: 3\n",                      # content after '...': error
    "# comment\n---\n# comment\n--- # comment\na: 1\n---\t\nb: 2\n",
    "%YAML 1.1\n---\na: 1\n---\nb: 2\n",                  # directives: never cut
    "---\na: 1\n%YAML 1.1\n---\nb: 2\n",
    "%TAG !e! tag:example.com,2000:\n---\na: 1\n---\nb: !e!x 2\n",
    "\ufeffa: 1\n---\nb: 2\n",                           # byte-order mark: never cut
    "a: 1\r---\rb: 2\n---\nc: 3\n",                      # other line breaks: never cut
    "a: 1\u2028---\u2028b: 2\n---\nc: 3\n",
    "a: &x [1]\nb: *x\n---\nc: *x\n",                    # anchors are per document: error
    "a: &x [1]\nb: *x\n---\nc: &x [2]\nd: *x\n",
    "a: !!str\n---\nb: !!int '1'\n",
    "a:\n---\n- x\n---\n",
    "key\n---\n: value\n",
    "? a\n---\n: b\n",
    "- a\n-\n---\n- b\n",
    "t: 2001-12-14 21:59:43.10 -5\n---\nd: 2002-12-14\n",
    "",
    "---",
    "\n---\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_streams_in_parts_are_the_serial_parse(text: str) -> None:
    same_in_parts(text)


def test_no_cut_where_the_module_says_none_is_safe() -> None:
    for text in ("%YAML 1.1\n---\na: 1\n---\nb: 2\n", "\ufeffa: 1\n---\nb: 2\n",
                 "a: 1\r\n---\r\nb: 2\n", "a: 1\x85---\nb: 2\n---\nc: 3\n"):
        assert yaml_split.parts(text, 4, min_part=1) == [text]
    assert yaml_split.parts("a: 1\n---\nb: 2\n", 4) == ["a: 1\n---\nb: 2\n"]  # too small


def big_stream(n: int) -> str:
    docs: list[Any] = []
    for i in range(n):
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": f"s{i}", "namespace": "default",
                                  "annotations": {"vipcast.io/loadBalancerIPs": f"10.0.{i}.1"}},
                     "spec": {"ports": [{"port": 80, "targetPort": 8080}], "x": [True, None,
                                                                                  1.5, "yes"]}})
    return yaml.safe_dump_all(docs, sort_keys=False)


def test_workers_give_the_serial_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    text = big_stream(300) + "---\nshared: &s {a: [1]}\nagain: *s\n" + big_stream(300)
    monkeypatch.setattr(yaml_split, "MIN_PART", 1000)
    monkeypatch.setattr(yaml_split, "HEAD_START", 0)
    assert len(yaml_split.parts(text, 3, min_part=1000)) == 3
    got = yaml_split.load_all(text, cpus=3)
    assert got == reference(text)
    shared = got[300]
    assert isinstance(shared, dict)
    assert shared["shared"] is shared["again"]  # an alias is still one value


def test_a_timestamp_comes_back_from_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    text = big_stream(50) + "---\nt: 2001-12-14 21:59:43.10 -5\nd: 2002-12-14\nb: !!binary aGk=\n"
    monkeypatch.setattr(yaml_split, "MIN_PART", 100)
    monkeypatch.setattr(yaml_split, "HEAD_START", 0)
    got = yaml_split.load_all(text, cpus=2)
    assert got == reference(text)
    last = got[-1]
    assert isinstance(last, dict)
    assert isinstance(last["t"], datetime.datetime)
    assert last["b"] == b"hi"


@pytest.mark.parametrize("broken", [
    "a: [1, 2\n",                 # in the worker's part
    "a: 'open\n---\nb: 1\n",      # across a cut
    "a: b: c\n",
])
def test_a_broken_stream_raises_the_serial_error(monkeypatch: pytest.MonkeyPatch,
                                                 broken: str) -> None:
    monkeypatch.setattr(yaml_split, "MIN_PART", 1000)
    monkeypatch.setattr(yaml_split, "HEAD_START", 0)
    text = big_stream(100) + "---\n" + broken + "---\n" + big_stream(100)
    with pytest.raises(yaml.YAMLError) as want:
        reference(text)
    with pytest.raises(yaml.YAMLError) as got:
        yaml_split.load_all(text, cpus=4)
    assert str(got.value) == str(want.value)
    # the file source's issue names the file and the line of the whole file
    mark = want.value.problem_mark  # type: ignore[attr-defined]
    problem = want.value.problem  # type: ignore[attr-defined]
    docs, issues = parse_bytes("services.yaml", text.encode())
    assert docs == []
    assert [(i.file, i.message) for i in issues] == [
        ("services.yaml",
         f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}")]
    assert mark.line > 100  # in the middle of the file, not of a part


def test_a_failed_worker_means_a_serial_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that cannot run (here: no such interpreter) costs time, never the result."""
    monkeypatch.setattr(yaml_split, "MIN_PART", 1000)
    monkeypatch.setattr(sys, "executable", str(Path("/nonexistent/python")))
    text = big_stream(100)
    assert yaml_split.load_all(text, cpus=2) == reference(text)


def test_the_cpus_are_bounded_by_the_cgroup_quota(tmp_path: Path) -> None:
    """A container's CPU limit (cgroup v2 cpu.max, or v1's CFS quota, on the process's cgroup
    or an ancestor) bounds the parts; no limit leaves the affinity mask."""
    proc = tmp_path / "cgroup"
    v2 = tmp_path / "v2"
    (v2 / "pod" / "agent").mkdir(parents=True)
    proc.write_text("0::/pod/agent\n")
    assert yaml_split.cgroup_cpu_quota(v2, proc) is None  # no cpu.max anywhere
    (v2 / "pod" / "agent" / "cpu.max").write_text("max 100000\n")
    assert yaml_split.cgroup_cpu_quota(v2, proc) is None
    (v2 / "pod" / "cpu.max").write_text("150000 100000\n")  # the pod's limit: 1.5 CPUs
    assert yaml_split.cgroup_cpu_quota(v2, proc) == 1.5
    (v2 / "pod" / "agent" / "cpu.max").write_text("50000 100000\n")
    assert yaml_split.cgroup_cpu_quota(v2, proc) == 0.5
    assert yaml_split.usable_cpus(v2, proc) == 1
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "docker" / "c1").mkdir(parents=True)
    proc.write_text("4:memory:/docker/c1\n2:cpu,cpuacct:/docker/c1\n0::/\n")
    group = v1 / "cpu,cpuacct" / "docker" / "c1"
    (group / "cpu.cfs_quota_us").write_text("-1\n")
    (group / "cpu.cfs_period_us").write_text("100000\n")
    assert yaml_split.cgroup_cpu_quota(v1, proc) is None
    (group / "cpu.cfs_quota_us").write_text("200000\n")
    assert yaml_split.cgroup_cpu_quota(v1, proc) == 2.0
    assert yaml_split.usable_cpus(v1, proc) == min(2, len(os.sched_getaffinity(0)))
    assert yaml_split.cgroup_cpu_quota(v1, tmp_path / "no-such-file") is None


def test_many_texts_are_each_the_serial_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Texts parsed together (parts of big ones and whole small ones dealt to the caller and
    two workers): each text's documents, or the error its serial parse raises."""
    monkeypatch.setattr(yaml_split, "MIN_PART", 1000)
    monkeypatch.setattr(yaml_split, "HEAD_START", 0)
    texts = [big_stream(40), "a: 1\n", big_stream(10) + "---\na: [1\n", "", "---\n---\n",
             big_stream(60) + "---\nt: 2001-12-14\n", "x: &a [1]\ny: *a\n", big_stream(20)]
    got = yaml_split.load_many(texts, cpus=3)
    assert len(got) == len(texts)
    for text, result in zip(texts, got, strict=True):
        try:
            want = reference(text)
        except yaml.YAMLError as exc:
            assert isinstance(result, yaml.YAMLError)
            assert str(result) == str(exc)
            continue
        assert result == want
    shared = got[6]
    assert isinstance(shared, list) and isinstance(shared[0], dict)
    assert shared[0]["x"] is shared[0]["y"]


def test_a_directory_of_files_loads_as_file_by_file(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """The file source over a directory of many files, parsed together on several CPUs: the
    same Spec as parsed one by one, and a broken file's issue names that file and line."""
    from vipcast.sources.files import ObjectFiles, load_paths
    from vipcast.spec import SpecError

    (tmp_path / "base.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "pool"}, "spec": {"addresses": ["10.0.0.0/8"]}}]))
    for i in range(12):
        docs = [{"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": f"f{i}-s{j}", "namespace": "default"},
                 "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
                for j in range(30)]
        (tmp_path / f"svc-{i:02d}.yaml").write_text(yaml.safe_dump_all(docs))
    monkeypatch.setattr(yaml_split, "MIN_PART", 10**9)  # one CPU: file by file
    serially = load_paths([tmp_path])
    monkeypatch.setattr(yaml_split, "MIN_PART", 2000)
    monkeypatch.setattr(yaml_split, "usable_cpus", lambda: 3)
    files = ObjectFiles([tmp_path])
    together = files.load()
    assert together == serially
    assert files.parsed == 13
    assert len(together.services) == 360
    broken = "a: b\n" * 50 + "c: [1\n"
    (tmp_path / "svc-05.yaml").write_text(broken)
    with pytest.raises(yaml.YAMLError) as want:
        reference(broken)
    with pytest.raises(SpecError) as refused:
        files.load()
    assert files.parsed == 1  # only the changed file was read again
    mark = want.value.problem_mark  # type: ignore[attr-defined]
    assert mark.line + 1 == 52
    assert [(i.file, i.message) for i in refused.value.issues] == [
        (str(tmp_path / "svc-05.yaml"), f"invalid YAML at line 52, column {mark.column + 1}: "
                                        f"{want.value.problem}")]  # type: ignore[attr-defined]
