#!/usr/bin/env bash
# Renders deploy/kubernetes/vipcast.yaml from the Helm chart (deploy/helm/vipcast) and copies
# the generated CRDs (deploy/crds, from `vipcast kube crds`) into the chart's files/crds/
# (rendered as templates, so `helm upgrade` upgrades them).
# The rendered file carries no node membership key (one would be shared by every user of the
# file): create the Secret vipcast-membership yourself (docs/kubernetes.md).
#   deploy/render.sh            write both
#   deploy/render.sh --stdout   print the rendered manifest only (the tests compare it)
# helm comes from scripts/install-helm.sh (cached under $HOME/.cache/vipcast-k8s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
HELM=${HELM:-${VIPCAST_K8S_CACHE:-$HOME/.cache/vipcast-k8s}/helm}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export HELM_CACHE_HOME="$scratch/cache" HELM_CONFIG_HOME="$scratch/config" \
       HELM_DATA_HOME="$scratch/data"

render() {
  echo "# vipcast: everything a cluster needs (CRDs, namespace, RBAC, controller + webhook,"
  echo "# speaker DaemonSet, cert-manager certificate for the webhook). GENERATED from the Helm"
  echo "# chart deploy/helm/vipcast by deploy/render.sh; do not edit by hand."
  "$HELM" template vipcast "$here/helm/vipcast" --namespace vipcast-system \
    --set namespace.create=true --set membershipKey.create=false
}

if [ "${1:-}" = "--stdout" ]; then
  render
  exit 0
fi
mkdir -p "$here/helm/vipcast/files/crds"
cp "$here"/crds/*.yaml "$here/helm/vipcast/files/crds/"
render > "$here/kubernetes/vipcast.yaml"
echo "rendered $here/kubernetes/vipcast.yaml"
