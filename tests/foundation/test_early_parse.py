"""The object files parsed by worker processes before the agent's modules are imported
(:mod:`vipcast.sources.early_parse`): the first load takes the documents of exactly the bytes
parsed, in the files' order, and is otherwise the load it always was: a file changed since is
read again, and one invalid file among many refuses the whole config with the file, line,
object and field named, as without the early parse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from vipcast.sources import yaml_split
from vipcast.sources.early_parse import start_parse
from vipcast.sources.files import ObjectFiles, load_paths
from vipcast.spec import SpecError


def services(prefix: str, count: int, port: int = 80) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": f"{prefix}-s{j}", "namespace": "default"},
             "spec": {"type": "LoadBalancer", "ports": [{"port": port}]}}
            for j in range(count)]


def folder(root: Path, files: int = 6, per_file: int = 40) -> Path:
    (root / "base.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "pool"}, "spec": {"addresses": ["10.0.0.0/8"]}}]))
    for i in range(files):
        (root / f"svc-{i:02d}.yaml").write_text(yaml.safe_dump_all(services(f"f{i}", per_file)))
    return root


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers for texts of a few KiB (the real threshold is 256 KiB)."""
    monkeypatch.setattr(yaml_split, "MIN_PART", 2000)


@pytest.mark.parametrize("cpus", [2, 4])
def test_the_early_documents_are_the_loads_in_order(tmp_path: Path, small_parts: None,
                                                    cpus: int) -> None:
    config = folder(tmp_path)
    early = start_parse([config], cpus=cpus)
    assert early is not None
    files = ObjectFiles([config], early=early)
    spec = files.load()
    assert early.used == 7  # every file's documents came from the workers
    assert files.early is None  # used once, then let go
    assert spec == load_paths([config])
    assert [s.metadata.name for s in spec.services] == [
        f"f{i}-s{j}" for i in range(6) for j in range(40)]


def test_a_file_changed_after_the_early_parse_is_read_again(tmp_path: Path,
                                                            small_parts: None) -> None:
    config = folder(tmp_path)
    early = start_parse([config], cpus=2)
    assert early is not None
    (config / "svc-03.yaml").write_text(yaml.safe_dump_all(services("new", 5)))
    spec = ObjectFiles([config], early=early).load()
    assert early.used == 6  # not the changed file's old documents
    names = [s.metadata.name for s in spec.services]
    assert [n for n in names if n.startswith(("f3-", "new-"))] == [f"new-s{j}" for j in range(5)]
    assert spec == load_paths([config])


@pytest.mark.parametrize("cpus", [2, 3])
def test_one_invalid_file_among_many_refuses_the_whole_config(tmp_path: Path,
                                                              small_parts: None,
                                                              cpus: int) -> None:
    """A broken YAML file and a bad field in another: the early parse changes nothing of the
    answer (every problem, file and line and field named; no Spec)."""
    config = folder(tmp_path)
    broken = "a: b\n" * 50 + "c: [1\n"
    (config / "svc-02.yaml").write_text(broken)
    (config / "svc-04.yaml").write_text(yaml.safe_dump_all(services("bad", 30, port=99999)))
    with pytest.raises(SpecError) as without:
        load_paths([config])
    early = start_parse([config], cpus=cpus)
    assert early is not None
    files = ObjectFiles([config], early=early)
    with pytest.raises(SpecError) as refused:
        files.load()
    assert refused.value.issues == without.value.issues
    messages = [(i.file, i.name, i.field, i.message) for i in refused.value.issues]
    assert messages[0][0] == str(config / "svc-02.yaml")
    assert messages[0][3].startswith("invalid YAML at line 52, column")
    assert any(m[0] == str(config / "svc-04.yaml") and m[1] == "bad-s0"
               and "spec.ports" in m[2] for m in messages), messages


def test_small_configs_are_parsed_by_the_load(tmp_path: Path) -> None:
    """Under 256 KiB of YAML a worker costs more than it saves: no early parse."""
    assert start_parse([folder(tmp_path, files=2)], cpus=2) is None
    assert start_parse([tmp_path / "missing"], cpus=2) is None


def test_a_closed_early_parse_is_only_a_normal_load(tmp_path: Path, small_parts: None) -> None:
    config = folder(tmp_path)
    early = start_parse([config], cpus=2)
    assert early is not None
    early.close()  # the agent stopped before its first load, say
    assert ObjectFiles([config], early=early).load() == load_paths([config])
    assert early.used == 0
