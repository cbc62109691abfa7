#!/usr/bin/env bash
# The main job: installs what it needs, then runs vipcast's demo.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
exec "$here/.venv/bin/vipcast" demo "$@"
