#!/usr/bin/env bash
# The real OpenStack Octavia API server (PyPI octavia, pinned) in its own virtualenv, cached
# outside the work tree: it pins many libraries of its own (SQLAlchemy, oslo.*, eventlet,
# pecan). tests/providers/octavia_api.py runs it; VIPCAST_OCTAVIA_VENV overrides the place.
# Idempotent; VIPCAST_SKIP_OCTAVIA=1 skips it (the Octavia tests then skip, saying why).
set -euo pipefail
[ -z "${VIPCAST_SKIP_OCTAVIA:-}" ] || exit 0
OCTAVIA_VERSION=19.0.0
venv=${VIPCAST_OCTAVIA_VENV:-$HOME/.cache/vipcast/octavia-$OCTAVIA_VERSION}
if [ -x "$venv/bin/octavia-api" ] && "$venv/bin/python" -c "import octavia" 2>/dev/null; then
  exit 0
fi
echo "octavia-venv: installing octavia==$OCTAVIA_VERSION into $venv"
PY=${VIPCAST_PYTHON:-python3}
"$PY" -m venv "$venv"
"$venv/bin/python" -m pip install -q "octavia==$OCTAVIA_VERSION"
