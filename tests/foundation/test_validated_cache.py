"""The disk cache of validated object files: a restart takes unchanged files from it, and any
change of a file's bytes (even one that keeps its mtime, size and inode) is parsed again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from vipcast.sources.files import ObjectFiles
from vipcast.sources.validated_cache import SUFFIX, ValidatedCache

V = "vipcast.io/v1beta1"


def write(path: Path, docs: list[dict[str, Any]]) -> None:
    path.write_text("\n---\n".join(json.dumps(d) for d in docs) + "\n")


def svc(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default",
                         "annotations": {"vipcast.io/loadBalancerIPs": ip}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    root = tmp_path / "config"
    root.mkdir()
    write(root / "base.yaml", [
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "p"},
         "spec": {"addresses": ["198.18.0.0/24"]}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
    ])
    write(root / "services.yaml", [svc(f"s{i}", f"198.18.0.{i + 1}") for i in range(20)])
    return root


def restart(config: Path, cache: Path) -> ObjectFiles:
    """A new process's file source: nothing in memory, the disk cache as left."""
    return ObjectFiles((config,), cache=ValidatedCache(cache))


def entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob(f"*{SUFFIX}"))


def test_restart_takes_unchanged_files_from_the_cache(config: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = restart(config, cache)
    spec = first.load()
    assert first.parsed == 2 and not entries(cache)  # written after the work, by save()
    first.save()
    assert len(entries(cache)) == 2
    second = restart(config, cache)
    again = second.load()
    assert second.parsed == 0 and second.disk is not None and second.disk.hits == 2
    assert again == spec and again.origins == spec.origins
    assert again == ObjectFiles((config,)).load()  # and what no cache gives


def test_a_change_that_keeps_mtime_size_and_inode_is_parsed(config: Path, tmp_path: Path
                                                            ) -> None:
    cache = tmp_path / "cache"
    files = restart(config, cache)
    files.load()
    files.save()
    target = config / "services.yaml"
    st = target.stat()
    text = target.read_text().replace("198.18.0.1\"", "198.18.0.9\"", 1)
    assert len(text) == st.st_size
    with target.open("r+") as handle:  # in place: the same inode
        handle.write(text)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_ino == st.st_ino
    second = restart(config, cache)
    spec = second.load()
    assert second.parsed == 1
    service = spec.service("default/s0")
    assert service is not None
    assert service.metadata.annotations["vipcast.io/loadBalancerIPs"] == "198.18.0.9"
    second.save()
    assert len(entries(cache)) == 2  # the entry of the old content is gone


def test_a_damaged_entry_is_a_miss(config: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    files = restart(config, cache)
    spec = files.load()
    files.save()
    for entry in entries(cache):
        entry.write_bytes(entry.read_bytes()[:40])
    second = restart(config, cache)
    assert second.load() == spec
    assert second.parsed == 2


def test_another_versions_entries_are_removed(config: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    stale = cache / ("0" * 32)
    stale.mkdir(parents=True)
    (stale / f"{'a' * 64}{SUFFIX}").write_bytes(b"not ours")
    files = restart(config, cache)
    files.load()
    files.save()
    assert not stale.exists()
    assert len(entries(cache)) == 2


def test_a_directory_others_may_write_is_not_used(config: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    files = restart(config, cache)
    assert files.disk is not None and not files.disk.usable
    files.load()
    files.save()
    assert not entries(cache)


def test_entries_of_unchanged_files_survive_later_reloads(config: Path, tmp_path: Path
                                                          ) -> None:
    cache = tmp_path / "cache"
    files = restart(config, cache)
    files.load()
    files.save()
    write(config / "extra.yaml", [svc("extra", "198.18.0.100")])
    files.load()  # reads extra.yaml alone: the others come from memory
    assert files.parsed == 1
    files.save()
    assert len(entries(cache)) == 3
    (config / "extra.yaml").unlink()
    files.load()
    files.save()
    assert len(entries(cache)) == 2
    again = restart(config, cache)
    again.load()
    assert again.parsed == 0
