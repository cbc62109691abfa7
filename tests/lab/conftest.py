"""Lab tests use the same fixtures other areas get from :mod:`vipcast.lab.pytest_fixtures`.

(``pytest_plugins`` is only allowed in the top-level conftest, so areas import the fixtures.)
"""

from __future__ import annotations

from vipcast.lab.pytest_fixtures import netlab, netlab_root

__all__ = ["netlab", "netlab_root"]
