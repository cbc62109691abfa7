#!/usr/bin/env bash
# The real OpenStack Keystone (PyPI keystone, pinned) in its own virtualenv, cached outside the
# work tree, for the Octavia driver's Keystone tests (Octavia with auth_strategy = keystone).
# tests/providers/keystone_api.py runs it (and caches its prepared database and keys in
# <venv>-state on first use); VIPCAST_KEYSTONE_VENV overrides the place.
# Idempotent; VIPCAST_SKIP_OCTAVIA=1 skips it (the Keystone tests then skip, saying why).
set -euo pipefail
[ -z "${VIPCAST_SKIP_OCTAVIA:-}" ] || exit 0
KEYSTONE_VERSION=30.0.0
venv=${VIPCAST_KEYSTONE_VENV:-$HOME/.cache/vipcast/keystone-$KEYSTONE_VERSION}
if [ -x "$venv/bin/keystone-manage" ] && "$venv/bin/python" -c "import keystone" 2>/dev/null; then
  exit 0
fi
echo "keystone-venv: installing keystone==$KEYSTONE_VERSION into $venv"
PY=${VIPCAST_PYTHON:-python3}
"$PY" -m venv "$venv"
"$venv/bin/python" -m pip install -q "keystone==$KEYSTONE_VERSION"
