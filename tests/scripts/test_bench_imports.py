"""Every bench script imports (what it imports from the tests and from vipcast still exists):
a bench is run by hand, rarely, so a module moved or renamed would otherwise go unseen until
someone measures. Runs each module's top level in one fresh interpreter, never its main()."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"

IMPORT_EACH = """
import importlib.util, sys, pathlib
bench = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(bench))  # as when run as `python bench/NAME.py`
for path in sorted(bench.glob("*.py")):
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # SystemExit included: a bench must not run on import
        print(f"{path.name}: {exc!r}")
"""


def test_every_bench_script_imports() -> None:
    scripts = sorted(BENCH.glob("*.py"))
    assert len(scripts) > 10
    out = subprocess.run([sys.executable, "-c", IMPORT_EACH, str(BENCH)], capture_output=True,
                         text=True, timeout=240, check=True, cwd=BENCH.parent)
    assert out.stdout == ""
