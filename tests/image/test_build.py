"""The image as built: what it holds, how it runs, and what the build script says when it
cannot build (never a half-built image under the tag)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import BUILD, REPO, Image

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1500)]


def test_version_in_the_container_names_the_build_revision(image: Image) -> None:
    out = image.run(["version"])
    labels = json.loads(image.podman("image", "inspect", "--format",
                                     "{{json .Config.Labels}}", image.ref).stdout)
    revision = labels["org.opencontainers.image.revision"]
    assert revision and revision != "unknown"
    assert out.stdout.strip() == (f"vipcast {labels['org.opencontainers.image.version']}"
                                  f" (revision {revision})")
    assert labels["org.opencontainers.image.source"]


def test_check_config_in_the_container_reads_mounted_files(image: Image) -> None:
    ok = image.run(["check-config", "/config/bgp/"], "-v", f"{REPO / 'examples'}:/config:ro")
    assert ok.stdout.startswith("valid:"), ok.stdout
    # a bad file: the problem named by file, object and field, exit 1
    bad = image.run(["check-config", "/config/"], "-v",
                    f"{REPO / 'tests' / 'image' / 'data'}:/config:ro", check=False)
    assert bad.returncode == 1, bad
    text = bad.stdout + bad.stderr
    assert "bad-pool.yaml" in text and "IPAddressPool" in text and "addresses" in text, text


def test_runs_as_non_root_with_its_tools_and_no_build_tools(image: Image) -> None:
    cfg = json.loads(image.podman("image", "inspect", "--format", "{{json .Config}}",
                                  image.ref).stdout)
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["vipcast"]
    script = ("id -u; command -v nft; command -v ip; "
              "python3 -c 'import nftables; nftables.Nftables()' && echo libnftables-ok; "
              "for t in gcc cc make pip pip3; do command -v $t || true; done; "
              "ls /opt/vipcast/lib/python3.11/site-packages | grep -ci '^pip-' || true; "
              "find /root/.cache /tmp /var/cache/apt/archives /var/lib/apt/lists -type f "
              "-not -name lock 2>/dev/null | wc -l")
    out = image.run(["-c", script], "--entrypoint", "sh").stdout.split()
    assert out[0] == "65532"
    assert [Path(p).name for p in out[1:3]] == ["nft", "ip"], out
    assert out[3] == "libnftables-ok"
    # as root, so that /root/.cache would be readable too
    rest = image.run(["-c", script], "--entrypoint", "sh", "--user", "0").stdout.split()[4:]
    assert out[4:] == rest == ["0", "0"], f"build tools, pip or caches in the image: {rest}"


def test_the_build_is_cached(image: Image) -> None:
    """A second run of the script reuses the image: same ID, no rebuild."""
    before = image.podman("image", "inspect", "--format", "{{.Id}}", image.ref).stdout
    out = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=600,
                         cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "up to date" in out.stderr and "podman build" not in out.stderr, out.stderr
    assert image.podman("image", "inspect", "--format", "{{.Id}}",
                        image.ref).stdout == before


def _bare_path(tmp_path: Path, without: str) -> str:
    """A PATH with links to every tool the script uses except ``without``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "git", "sha256sum", "cut", "cat", "grep", "sed", "mkdir", "rm", "id",
                 "python3", "mktemp", "dirname", "podman", "runc", "mmdebstrap", "tail"):
        found = shutil.which(tool)
        if found and tool != without:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


@pytest.mark.parametrize("tool", ["podman", "mmdebstrap", "runc"])
def test_a_missing_tool_is_named_and_nothing_is_tagged(tmp_path: Path, tool: str) -> None:
    out = subprocess.run(
        ["bash", str(BUILD)], capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PATH": _bare_path(tmp_path, tool), "VIPCAST_IMAGE_NO_INSTALL": "1",
             "VIPCAST_IMAGE_CACHE": str(tmp_path / "cache")}, check=False)
    assert out.returncode == 1
    assert f"missing: {tool} (Debian package {tool}" in out.stderr, out.stderr
    assert out.stdout == ""


def test_a_missing_mirror_is_named(tmp_path: Path) -> None:
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("podman and mmdebstrap are checked first (scripts/setup.sh installs them)")
    empty = tmp_path / "debian.sources"
    empty.write_text("# no mirror here\n")
    out = subprocess.run(
        ["bash", str(BUILD)], capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "VIPCAST_DEBIAN_SOURCES": str(empty), "VIPCAST_IMAGE_NO_INSTALL": "1",
             "VIPCAST_IMAGE_CACHE": str(tmp_path / "cache")}, check=False)
    assert out.returncode == 1
    assert f"missing: a Debian mirror in {empty}" in out.stderr, out.stderr


def test_a_stale_lock_is_refused(tmp_path: Path) -> None:
    """pyproject.toml's dependencies changed since the lock was made: the script says so."""
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("podman and mmdebstrap are checked first (scripts/setup.sh installs them)")
    copy = tmp_path / "repo"
    for part in ("scripts", "deploy/image"):
        shutil.copytree(REPO / part, copy / part)
    text = (REPO / "pyproject.toml").read_text()
    (copy / "pyproject.toml").write_text(
        text.replace('dependencies = [\n', 'dependencies = [\n  "six>=1",\n', 1))
    out = subprocess.run(
        ["bash", str(copy / "scripts" / "build-image.sh")], capture_output=True, text=True,
        timeout=120, cwd=copy, env={**os.environ, "VIPCAST_IMAGE_NO_INSTALL": "1",
                                    "VIPCAST_IMAGE_CACHE": str(tmp_path / "cache")},
        check=False)
    assert out.returncode == 1
    assert "requirements.lock is stale" in out.stderr and "--relock" in out.stderr, out.stderr


def test_the_lock_pins_every_file_by_hash() -> None:
    lock = (REPO / "deploy" / "image" / "requirements.lock").read_text()
    reqs = [line for line in lock.splitlines() if line and line[0].isalpha()]
    assert reqs and all("==" in line for line in reqs), reqs
    blocks = lock.split("==")[1:]
    assert all("--hash=sha256:" in block for block in blocks)
    names = {line.split("==")[0].lower() for line in reqs}
    assert {"pydantic", "lightkube", "pip-nftables", "pyroute2"} <= names, names
