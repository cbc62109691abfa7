"""Suite-wide hygiene: hypothesis profiles, the lab fixtures and the skip summary.

Area fixtures live in each tests/<area>/conftest.py.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# the namespace-lab fixtures (``netlab``), shared by every area; skips grouped by reason at the
# end; ``example`` (an examples/ directory copied to tmp) for the CLI tests
pytest_plugins = ["lab_fixtures", "skip_summary", "cli_examples"]

settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
