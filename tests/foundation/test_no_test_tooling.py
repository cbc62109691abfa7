"""The product package never needs test tooling: the wheel and the container image carry no
pytest or hypothesis (the lab's pytest fixtures live in ``tests/lab_fixtures.py``)."""

from __future__ import annotations

import subprocess
import sys

TEST_TOOLING = ("pytest", "_pytest", "pluggy", "hypothesis")

# a fresh interpreter in which test tooling cannot be imported at all imports every module of
# vipcast and lists the modules it could not import and any test tooling that got loaded
IMPORT_ALL = f"""
import importlib, pkgutil, sys
for name in {TEST_TOOLING!r}:
    sys.modules[name] = None  # import of it raises ImportError
import vipcast
failed = []
for info in pkgutil.walk_packages(vipcast.__path__, "vipcast."):
    try:
        importlib.import_module(info.name)
    except ImportError as e:
        failed.append(f"{{info.name}}: {{e}}")
loaded = [m for m in sys.modules if m.split(".")[0] in {TEST_TOOLING!r} and sys.modules[m]]
print("\\n".join(failed + loaded))
"""


def test_every_vipcast_module_imports_without_test_tooling() -> None:
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], check=True, capture_output=True,
                         text=True, timeout=240)
    assert out.stdout.strip() == ""


def test_the_lab_fixtures_are_not_in_the_product_package() -> None:
    import importlib.util

    assert importlib.util.find_spec("vipcast.lab.pytest_fixtures") is None
    assert importlib.util.find_spec("lab_fixtures") is not None
