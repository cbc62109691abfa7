"""A package's public names imported when first read (PEP 562), so that importing one
module of a package (as ``vipcast plan`` does) does not import all of it.

The lowest layer of all (pyproject.toml's contracts): it imports nothing of vipcast, and any
package may use it::

    _WHERE = {"Session": ".session", ...}        # name -> module (relative to the package)
    __getattr__ = lazy_exports(globals(), _WHERE)

Names are listed in ``__all__`` and, for the type checker, imported under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from importlib.util import resolve_name
from types import ModuleType
from typing import Any


def lazy_exports(namespace: dict[str, Any], where: Mapping[str, str]) -> Callable[[str], object]:
    """The ``__getattr__`` of the package whose ``globals()`` is ``namespace``: a name of
    ``where`` is imported from its module when first read and then kept in the package (the
    next read is a plain attribute); any other name is an ``AttributeError``.

    A name that is also the name of the submodule it lives in (``translate`` in
    ``.translate``) stays the name: the import system binds a submodule on its package once
    loaded, which would otherwise leave the module where the function was read before."""
    package = str(namespace["__name__"])
    shadowed = {name for name, module in where.items()
                if resolve_name(module, package) == f"{package}.{name}"}
    if shadowed:
        sys.modules[package].__class__ = _names_over_submodules(package, frozenset(shadowed))

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        namespace[name] = value
        return value

    return __getattr__


def _names_over_submodules(package: str, names: frozenset[str]) -> type[ModuleType]:
    class NamesOverSubmodules(ModuleType):
        """The package's class: binding submodule ``package.name`` as ``name`` binds the
        submodule's ``name`` instead."""

        def __setattr__(self, name: str, value: object) -> None:
            if (name in names and isinstance(value, ModuleType)
                    and value.__name__ == f"{package}.{name}"):
                value = getattr(value, name)
            super().__setattr__(name, value)

    return NamesOverSubmodules
