#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), then lint, types, layers, tests.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
bash scripts/build-k8s.sh || echo "== k8s: API server build failed; the API-tier tests (tests/kube) will skip"
bash scripts/install-helm.sh || echo "== helm: install failed; the chart tests (tests/kube/test_chart.py) will skip"
export PATH="$here/.venv/bin:$PATH"
echo "== ruff";        ruff check src tests bench
echo "== mypy";        mypy --strict src/vipcast
echo "== import-linter"; lint-imports
echo "== pytest"
exec python -m pytest -q "$@"
