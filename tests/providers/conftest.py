"""Area fixtures: the real Octavia API server, started once per session when a test asks."""

from __future__ import annotations

from collections.abc import Iterator

import harness_octavia
import pytest
from octavia_api import MISSING, OctaviaAPI


@pytest.fixture(scope="session")
def octavia_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OctaviaAPI]:
    if MISSING:
        pytest.skip(MISSING)
    api = OctaviaAPI(tmp_path_factory.mktemp("octavia"))
    api.start()
    harness_octavia.SERVER[:] = [api]
    try:
        yield api
    finally:
        api.stop()
        harness_octavia.SERVER.clear()
