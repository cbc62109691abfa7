"""Build time and size of vipcast's container image (``scripts/build-image.sh``).

Runs the script three times against a podman store and an image cache of its own (a temporary
directory: nothing of the machine's store or ``~/.cache/vipcast-image`` is used or touched):

1. cold: no root filesystems, no wheels, no pip cache, no images;
2. cached: the same sources again (the script only checks and re-tags);
3. after a source change (what a new commit costs: the dependency stage stays cached).

then measures the image: uncompressed size, ``podman save`` as an OCI archive, gzip -6 size.
Run as root (rootful podman): ``.venv/bin/python bench/image_build.py`` (about 10-15 minutes
on 2 shared cores; most of the cold time is mmdebstrap and pip's downloads).
Writes bench/image_build.json.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_suffix(".json")


def _build(env: dict[str, str]) -> tuple[float, str, str]:
    t0 = time.monotonic()
    out = subprocess.run(["bash", str(REPO / "scripts" / "build-image.sh")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=3600, check=False)
    took = time.monotonic() - t0
    if out.returncode != 0:
        sys.exit(f"build failed:\n{out.stderr[-4000:]}")
    return took, out.stdout.strip().splitlines()[-1], out.stderr


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("run as root (rootful podman)")
    scratch = Path(tempfile.mkdtemp(prefix="vc-image-bench-", dir="/var/tmp"))
    storage = scratch / "storage.conf"
    storage.write_text(f'[storage]\ndriver = "overlay"\nrunroot = "{scratch}/run"\n'
                       f'graphroot = "{scratch}/graph"\n')
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(storage),
           "CONTAINERS_CONF": str(REPO / "deploy" / "image" / "containers.conf"),
           "VIPCAST_IMAGE_CACHE": str(scratch / "cache"), "PIP_NO_CACHE_DIR": "1"}
    touched = REPO / "src" / "vipcast" / "_bench_touch.py"
    try:
        cold, ref, _ = _build(env)
        print(f"cold build: {cold:.0f} s")
        cached, _, log = _build(env)
        assert "up to date" in log, log
        print(f"cached (same sources): {cached:.1f} s")
        touched.write_text("# a source change for bench/image_build.py\n")
        try:
            changed, _, _ = _build(env)
        finally:
            touched.unlink()
        print(f"after a source change: {changed:.0f} s")
        size = json.loads(subprocess.run(
            ["podman", "image", "inspect", ref], env=env, capture_output=True, text=True,
            check=True).stdout)[0]["Size"]
        archive = scratch / "image.tar"
        subprocess.run(["podman", "save", "--format", "oci-archive", "-o", str(archive), ref],
                       env=env, check=True, capture_output=True)
        with archive.open("rb") as src, gzip.open(scratch / "image.tar.gz", "wb", 6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        compressed = (scratch / "image.tar.gz").stat().st_size
        result = {"cold_s": round(cold, 1), "cached_s": round(cached, 2),
                  "source_change_s": round(changed, 1), "image_bytes": size,
                  "oci_archive_gzip_bytes": compressed,
                  "compressed_mb": round(compressed / 1e6, 1), "budget_mb": 150,
                  "ratio_to_budget": round(compressed / 150e6, 2)}
        print(json.dumps(result, indent=2))
        OUT.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        subprocess.run(["podman", "rmi", "-a", "-f"], env=env, capture_output=True, check=False)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
