"""Lab tests: ``netlab`` comes from :mod:`vipcast.lab.pytest_fixtures` (top-level conftest)."""
