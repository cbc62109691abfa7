"""Area fixtures: the real Octavia API server (noauth, and one with the real Keystone), each
started once per session when a test asks."""

from __future__ import annotations

from collections.abc import Iterator

import harness_octavia
import pytest
from keystone_api import MISSING as KEYSTONE_MISSING
from keystone_api import KeystoneAPI
from octavia_api import MISSING, OctaviaAPI, with_keystone


@pytest.fixture(scope="session")
def octavia_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OctaviaAPI]:
    if MISSING:
        pytest.skip(MISSING)
    api = OctaviaAPI(tmp_path_factory.mktemp("octavia"))
    try:
        api.start()
        harness_octavia.SERVER[:] = [api]
        yield api
    finally:
        api.stop()
        harness_octavia.SERVER.clear()


@pytest.fixture(scope="session")
def octavia_keystone(tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[tuple[OctaviaAPI, KeystoneAPI]]:
    """The real Keystone (its prepared state cached under ~/.cache, see keystone_api.py) and a
    second real Octavia API server, this one with ``auth_strategy = keystone``; both start
    at once (Octavia asks Keystone only when the first request comes)."""
    for missing in (KEYSTONE_MISSING, MISSING):
        if missing:
            pytest.skip(missing)
    with with_keystone(tmp_path_factory.mktemp("keystone"),
                       tmp_path_factory.mktemp("octavia-keystone")) as both:
        yield both
