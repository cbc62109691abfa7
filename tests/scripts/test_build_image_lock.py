"""scripts/build-image.sh builds one image at a time per cache (an flock on build.lock).

Two unlocked runs on one cache (CI and a developer, two checkouts, two test sessions) wrote the
same root filesystem tarballs, wheel directory and podman-build.log, and each removed the other's
``vipcast:build-*`` tag as an "earlier build". These runs stop right after the lock: a copy of
the scripts with a stale requirements lock (refused just after the lock is taken), so nothing is
built and nothing touches the real cache.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The scripts and image inputs with a stale requirements lock: a run that gets the build
    lock stops at once with "requirements.lock is stale"."""
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("podman and mmdebstrap are checked first (scripts/setup.sh installs them)")
    repo = tmp_path / "repo"
    for part in ("scripts", "deploy/image"):
        shutil.copytree(REPO / part, repo / part)
    text = (REPO / "pyproject.toml").read_text()
    (repo / "pyproject.toml").write_text(
        text.replace('dependencies = [\n', 'dependencies = [\n  "six>=1",\n', 1))
    return repo


def _start(repo: Path, cache: Path, wait: int, log: Path) -> subprocess.Popen[str]:
    """Run the copy's build-image.sh, its stderr to ``log`` (readable while it runs)."""
    env = {**os.environ, "VIPCAST_IMAGE_NO_INSTALL": "1", "VIPCAST_IMAGE_CACHE": str(cache),
           "VIPCAST_IMAGE_LOCK_WAIT": str(wait)}
    with log.open("w") as err:
        return subprocess.Popen(["bash", str(repo / "scripts" / "build-image.sh")], cwd=repo,
                                env=env, stdout=subprocess.PIPE, stderr=err, text=True)


def _hold(cache: Path, who: str) -> int:
    """Take the build lock as another build would; returns the open descriptor."""
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache / "build.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    fcntl.flock(fd, fcntl.LOCK_EX)
    (cache / "build.lock.owner").write_text(who + "\n")
    return fd


def test_a_second_build_waits_then_gives_up_naming_the_holder(copy: Path,
                                                              tmp_path: Path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "stderr"
    fd = _hold(cache, "pid 4242 since 12:00:00 UTC, checkout /elsewhere")
    try:
        proc = _start(copy, cache, wait=1, log=log)
        # generous: before the lock the script checks its tools and pip, seconds of start-up
        # at nice 15 on a loaded machine
        out, _ = proc.communicate(timeout=240)
    finally:
        os.close(fd)
    err = log.read_text()
    assert proc.returncode == 1, err
    assert "waiting for another build that holds" in err, err
    assert f"another build still holds {cache / 'build.lock'} after 1s" in err, err
    assert "pid 4242 since 12:00:00 UTC, checkout /elsewhere" in err, err
    assert "nothing was built" in err, err
    # it stopped at the lock: the stale requirements lock behind it was never looked at
    assert "requirements.lock is stale" not in err, err
    assert out == ""
    assert sorted(p.name for p in cache.iterdir()) == ["build.lock", "build.lock.owner"]


def test_a_waiting_build_goes_on_once_the_lock_is_released(copy: Path,
                                                           tmp_path: Path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "stderr"
    fd = _hold(cache, "pid 4242 since 12:00:00 UTC, checkout /elsewhere")
    try:
        proc = _start(copy, cache, wait=300, log=log)
        deadline = time.monotonic() + 180
        while "waiting for another build" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"never reached the lock: {log.read_text()}"
            time.sleep(0.1)
        # blocked at the lock: still running, nothing past it done, the holder unchanged
        time.sleep(1)
        assert proc.poll() is None, log.read_text()
        assert "requirements.lock is stale" not in log.read_text()
        assert (cache / "build.lock.owner").read_text().startswith("pid 4242")
    finally:
        os.close(fd)
    proc.communicate(timeout=100)
    err = log.read_text()
    assert f"got {cache / 'build.lock'}" in err, err
    # past the lock it went on to the next check (the copy's stale requirements lock)
    assert "requirements.lock is stale" in err, err
    assert err.index("got ") < err.index("requirements.lock is stale")
    assert proc.returncode == 1
    assert (cache / "build.lock.owner").read_text().startswith(f"pid {proc.pid} ")
