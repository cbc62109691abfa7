"""vipcast.lazy_exports: the one PEP 562 mechanism of the lazy packages."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from vipcast.lazy_exports import lazy_exports

LAZY = ["vipcast.proto.bgp", "vipcast.proto.bfd", "vipcast.core.gateway", "vipcast.spec"]


def modules_of(package: str) -> set[str]:
    pkg = importlib.import_module(package)
    return {importlib.util.resolve_name(m, package) for m in pkg._WHERE.values()}


@pytest.mark.parametrize("package", LAZY)
def test_importing_the_package_imports_none_of_its_lazy_modules(package: str) -> None:
    code = (f"import json, sys; import {package}; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                           capture_output=True, text=True,
                                           timeout=120).stdout))
    assert package in loaded
    lazy = modules_of(package)
    assert len(lazy) >= 3
    assert not lazy & loaded, sorted(lazy & loaded)


@pytest.mark.parametrize("package", LAZY)
def test_each_name_resolves_to_its_module_and_stays(package: str) -> None:
    pkg = importlib.import_module(package)
    assert sorted(pkg._WHERE) == sorted(pkg.__all__)
    for name in pkg.__all__:
        where = importlib.import_module(pkg._WHERE[name], package)
        assert getattr(pkg, name) is getattr(where, name)
        assert vars(pkg)[name] is getattr(where, name)  # kept: the next read is plain
    with pytest.raises(AttributeError, match=f"{package}.*no_such_name"):
        pkg.no_such_name  # noqa: B018


def test_the_mechanism_on_its_own() -> None:
    namespace: dict[str, object] = {"__name__": "vipcast.proto"}
    getter = lazy_exports(namespace, {"parse": "json", "Spare": ".bgp.constants"})
    assert "parse" not in namespace
    with pytest.raises(AttributeError, match="has no attribute 'loads'"):
        getter("loads")
    with pytest.raises(AttributeError):  # listed, but not in its module: an error, not None
        getter("parse")
    assert "parse" not in namespace
    getter = lazy_exports(namespace, {"Family": ".bgp.constants"})
    from vipcast.proto.bgp.constants import Family

    assert getter("Family") is Family
    assert namespace["Family"] is Family


def test_a_name_shared_with_its_submodule_stays_the_name() -> None:
    """``translate`` lives in ``core/gateway/translate.py``: importing the submodule first (a
    fresh interpreter) must not leave the module where the function is read."""
    code = ("import vipcast.core.gateway.translate, vipcast.core.gateway as g; "
            "from vipcast.core.gateway import translate; "
            "print(callable(translate), type(g.translate).__name__)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120).stdout.split()
    assert out == ["True", "function"]
