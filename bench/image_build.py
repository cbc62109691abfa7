"""Build time, size and reproducibility of vipcast's container image
(``scripts/build-image.sh``).

Runs the script against podman stores and image caches of its own (temporary directories:
nothing of the machine's store or ``~/.cache/vipcast-image`` is used or touched):

A. cold: no root filesystems, no wheels, no pip cache, no images;
   cached: the same sources again (the script only checks and re-tags);
   ``--no-cache``: the final stages rebuilt on the cached bases (the CI check's cost; it must
   give the same image ID);
   after a source change (what a new commit costs: the dependency image stays cached);
B. cold again in a second, empty store and cache: new root filesystems from the mirror, a new
   dependency image, a new final image. Reproducible: the same image ID and layer digests as
   A, and the same root filesystem tarballs.

then measures A's image: uncompressed size, ``podman save`` as an OCI archive, gzip -6 size.
Run as root (rootful podman) from a clean checkout (the revision label is the commit's):
``.venv/bin/python bench/image_build.py`` (about 20-25 minutes on 2 shared cores; most of a
cold build is mmdebstrap and pip's downloads). Writes bench/image_build.json.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_suffix(".json")


class Store:
    """A podman store and an image cache in a scratch directory."""

    def __init__(self, scratch: Path, name: str) -> None:
        self.root = scratch / name
        self.root.mkdir()
        storage = self.root / "storage.conf"
        storage.write_text(f'[storage]\ndriver = "overlay"\nrunroot = "{self.root}/run"\n'
                           f'graphroot = "{self.root}/graph"\n')
        self.cache = self.root / "cache"
        self.env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(storage),
                    "CONTAINERS_CONF": str(REPO / "deploy" / "image" / "containers.conf"),
                    "VIPCAST_IMAGE_CACHE": str(self.cache), "PIP_NO_CACHE_DIR": "1"}

    def build(self, *args: str) -> tuple[float, str, str]:
        t0 = time.monotonic()
        out = subprocess.run(["bash", str(REPO / "scripts" / "build-image.sh"), *args],
                             cwd=REPO, env=self.env, capture_output=True, text=True,
                             timeout=3600, check=False)
        took = time.monotonic() - t0
        if out.returncode != 0:
            sys.exit(f"build failed:\n{out.stderr[-4000:]}")
        return took, out.stdout.strip().splitlines()[-1], out.stderr

    def podman(self, *args: str) -> str:
        return subprocess.run(["podman", *args], env=self.env, capture_output=True,
                              text=True, check=True).stdout

    def inspect(self, ref: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.podman("image", "inspect", ref))[0]
        return data

    def rootfs(self) -> dict[str, str]:
        """name (runtime/build) -> sha256 of its mmdebstrap tarball."""
        out = {}
        for tar in sorted((self.cache / "rootfs").glob("*.tar")):
            out[tar.name.split("-")[0]] = hashlib.sha256(tar.read_bytes()).hexdigest()
        return out

    def close(self) -> None:
        subprocess.run(["podman", "rmi", "-a", "-f"], env=self.env, capture_output=True,
                       check=False)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("run as root (rootful podman)")
    scratch = Path(tempfile.mkdtemp(prefix="vc-image-bench-", dir="/var/tmp"))
    a, b = Store(scratch, "a"), Store(scratch, "b")
    touched = REPO / "src" / "vipcast" / "_bench_touch.py"
    try:
        cold, ref, _ = a.build()
        image_a = a.inspect(ref)
        print(f"A cold build: {cold:.0f} s, image {image_a['Id'][:12]}")
        cached, _, log = a.build()
        assert "up to date" in log, log
        print(f"A cached (same sources): {cached:.1f} s")
        no_cache, _, _ = a.build("--no-cache")
        rebuilt = a.inspect(ref)
        print(f"A --no-cache (final stages on the cached bases): {no_cache:.0f} s, "
              f"image {rebuilt['Id'][:12]}")
        touched.write_text("# a source change for bench/image_build.py\n")
        try:
            changed, _, _ = a.build()
        finally:
            touched.unlink()
        print(f"A after a source change: {changed:.0f} s")
        a.build()  # back to the commit's image (cached)
        cold_b, ref_b, _ = b.build()
        image_b = b.inspect(ref_b)
        print(f"B cold build (empty store and cache): {cold_b:.0f} s, image {image_b['Id'][:12]}")
        layers_a, layers_b = image_a["RootFS"]["Layers"], image_b["RootFS"]["Layers"]
        rootfs_a, rootfs_b = a.rootfs(), b.rootfs()
        archive = scratch / "image.tar"
        subprocess.run(["podman", "save", "--format", "oci-archive", "-o", str(archive), ref],
                       env=a.env, check=True, capture_output=True)
        with archive.open("rb") as src, gzip.open(scratch / "image.tar.gz", "wb", 6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        compressed = (scratch / "image.tar.gz").stat().st_size
        same = image_a["Id"] == image_b["Id"] == rebuilt["Id"]
        result = {
            "cold_s": round(cold, 1), "cached_s": round(cached, 2),
            "no_cache_final_stages_s": round(no_cache, 1),
            "source_change_s": round(changed, 1), "cold_b_s": round(cold_b, 1),
            "image_bytes": image_a["Size"], "oci_archive_gzip_bytes": compressed,
            "compressed_mb": round(compressed / 1e6, 1), "budget_mb": 150,
            "ratio_to_budget": round(compressed / 150e6, 2),
            "ratio_cached_to_cold": round(cached / cold, 3),
            "ratio_no_cache_to_cold": round(no_cache / cold, 3),
            "reproducible": {
                "image_id_a": image_a["Id"], "image_id_b": image_b["Id"],
                "image_id_no_cache": rebuilt["Id"],
                "same_image_id": same,
                "layers": len(layers_a), "same_layers": layers_a == layers_b,
                "layers_a": layers_a, "layers_b": layers_b,
                "rootfs_sha256_a": rootfs_a, "rootfs_sha256_b": rootfs_b,
                "same_rootfs": bool(rootfs_a) and rootfs_a == rootfs_b,
                "created": image_a["Created"],
            },
        }
        print(json.dumps(result, indent=2))
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        if not same:
            sys.exit("NOT reproducible: the image IDs differ (see bench/image_build.json)")
    finally:
        a.close()
        b.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
