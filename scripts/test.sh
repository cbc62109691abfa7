#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), then lint, types, layers, tests.
# The Kubernetes API server (scripts/build-k8s.sh) and helm (scripts/install-helm.sh) are part of
# the suite: if either cannot be built/installed the run fails. On a developer's machine without
# them, VIPCAST_SKIP_KUBE=1 skips both and the API-tier/chart tests, and the run's summary says so.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
if [ "${VIPCAST_SKIP_KUBE:-}" = 1 ]; then
  echo "== k8s, helm: NOT built/installed (VIPCAST_SKIP_KUBE=1); the API-tier and chart tests will skip"
else
  bash scripts/build-k8s.sh || {
    echo "== k8s: the API server build failed (see above); the suite cannot run the API-tier" \
         "tests. Fix the build, or set VIPCAST_SKIP_KUBE=1 to skip them deliberately." >&2
    exit 1
  }
  bash scripts/install-helm.sh || {
    echo "== helm: install failed (see above); the suite cannot run the chart tests." \
         "Fix it, or set VIPCAST_SKIP_KUBE=1 to skip them deliberately." >&2
    exit 1
  }
fi
bash scripts/build-image.sh >/dev/null || {
  echo "== image: the build failed (see above); the image tests (tests/image) would fail" >&2
  exit 1
}
export PATH="$here/.venv/bin:$PATH"
echo "== ruff";        ruff check src tests bench
echo "== mypy";        mypy --strict src/vipcast
echo "== import-linter"; lint-imports
# the FRR bgpd corpus (tests/bgp/test_frr_corpus*.py): $VIPCAST_BGP_CORPUS, else beside the
# checkout (../shared/corpora/bgp-frr/bgpd), else the unchanged copy packed in the tests
corpus="${VIPCAST_BGP_CORPUS:-$here/../shared/corpora/bgp-frr/bgpd}"
if [ -d "$corpus/gen" ]; then
  echo "== corpora: FRR bgpd corpus at $corpus"
else
  echo "== corpora: FRR bgpd corpus from tests/bgp/vectors/frr-corpus/bgpd.tar.xz"
fi
echo "== pytest"
exec python -m pytest -q "$@"
