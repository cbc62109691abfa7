"""Objects from YAML files (the standalone source)."""
