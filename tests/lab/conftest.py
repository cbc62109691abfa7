"""Lab tests: ``netlab`` comes from :mod:`lab_fixtures` (top-level conftest)."""
