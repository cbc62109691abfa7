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


def _build(*args: str, env: dict[str, str] | None = None,
           cwd: Path = REPO, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(cwd / "scripts" / "build-image.sh"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})}, check=False)


def _image_id(stderr: str) -> str:
    """The image ID the script names in its last line ("tagged ... image <id>")."""
    line = [x for x in stderr.splitlines() if x.startswith("build-image: tagged ")][-1]
    return line.rsplit("image ", 1)[1].rstrip(")")


def test_the_final_stages_rebuild_to_the_same_image(image: Image) -> None:
    """Reproducible (the cheap check; bench/image_build.py builds twice from nothing): the
    final stages rebuilt without podman's cache, on the cached base and dependency image, give
    the image ID the cached build has, so the same layer digests and config."""
    cached = _build()
    assert cached.returncode == 0, cached.stderr[-3000:]
    rebuilt = _build("--no-cache")
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert "podman build (base" in rebuilt.stderr, rebuilt.stderr
    first, second = _image_id(cached.stderr), _image_id(rebuilt.stderr)
    # the IDs from the script's own output: another checkout building into the same store
    # may re-tag or remove images meanwhile (its clean-up of superseded build-* tags)
    layers = [image.podman("image", "inspect", "--format", "{{json .RootFS.Layers}}",
                           ref, check=False).stdout for ref in (first, second)]
    assert first == second, (first, second, layers)
    created = image.podman("image", "inspect", "--format", "{{.Created.Unix}}",
                           second).stdout
    commit = subprocess.run(["git", "log", "-1", "--format=%ct"], capture_output=True,
                            text=True, cwd=REPO, check=True).stdout
    assert created.strip() == commit.strip()  # SOURCE_DATE_EPOCH: the commit's time


def test_the_debian_lock_pins_every_package() -> None:
    lock = (REPO / "deploy" / "image" / "debian.lock").read_text()
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in lock.splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        elif line and not line.startswith("#"):
            assert current is not None and line.count("=") == 1, line
            name, version = line.split("=")
            current[name] = version
    assert set(sections) == {"runtime", "build"}
    assert {"python3", "libnftables1", "nftables", "iproute2", "ca-certificates",
            "libc6", "base-files"} <= set(sections["runtime"])
    assert {"python3-venv"} <= set(sections["build"]) - set(sections["runtime"])
    # one version of each package in both root filesystems
    shared = set(sections["runtime"]) & set(sections["build"])
    assert all(sections["runtime"][p] == sections["build"][p] for p in shared)
    assert "# source-date-epoch: " in lock and "_InRelease " in lock


def _repo_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    for part in ("scripts", "deploy/image"):
        shutil.copytree(REPO / part, copy / part)
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_a_pinned_version_the_mirror_no_longer_has_is_named(tmp_path: Path) -> None:
    """The lock pins a version the mirror does not have (any more): the build stops when
    the mirror's lists are known, naming the package and version, and nothing is tagged."""
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("podman and mmdebstrap are checked first (scripts/setup.sh installs them)")
    copy = _repo_copy(tmp_path)
    lock = copy / "deploy" / "image" / "debian.lock"
    text = lock.read_text()
    old = next(line for line in text.splitlines() if line.startswith("base-files="))
    lock.write_text(text.replace(old, "base-files=0.0+vipcast.gone"))
    out = _build(cwd=copy, timeout=900, env={
        "VIPCAST_IMAGE_NO_INSTALL": "1", "VIPCAST_IMAGE_CACHE": str(tmp_path / "cache"),
        "VIPCAST_PYTHON": str(REPO / ".venv" / "bin" / "python")
        if (REPO / ".venv" / "bin" / "python").exists() else "python3"})
    assert out.returncode == 1, out.stderr[-3000:]
    assert "base-files=0.0+vipcast.gone" in out.stderr, out.stderr[-3000:]
    assert "no longer has" in out.stderr and "--relock-debian" in out.stderr, out.stderr
    assert out.stdout == ""
    assert not list((tmp_path / "cache" / "rootfs").glob("*.tar")), "a root filesystem was kept"


def test_a_stale_debian_lock_is_refused(tmp_path: Path) -> None:
    """The package lists changed since deploy/image/debian.lock was made: the script says so
    before building anything."""
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("podman and mmdebstrap are checked first (scripts/setup.sh installs them)")
    copy = _repo_copy(tmp_path)
    script = copy / "scripts" / "build-image.sh"
    script.write_text(script.read_text().replace(
        "RUNTIME_PACKAGES=(python3 ", "RUNTIME_PACKAGES=(python3 curl ", 1))
    out = _build(cwd=copy, timeout=120, env={"VIPCAST_IMAGE_NO_INSTALL": "1",
                                             "VIPCAST_IMAGE_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 1
    assert "debian.lock is stale" in out.stderr and "--relock-debian" in out.stderr, out.stderr
