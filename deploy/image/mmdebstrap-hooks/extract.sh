#!/bin/sh
# mmdebstrap --extract-hook of scripts/build-image.sh: the first moment the mirror's package
# lists are known (after the essential packages were downloaded, before anything else). Every
# name=version in $VC_LOCKED must be on the mirror; the ones that are not are written to
# $VC_HARVEST/unavailable and the build stops here, instead of taking another version.
set -eu
names=$(cut -d= -f1 "$VC_LOCKED" | tr '\n' ' ')
# shellcheck disable=SC2086  # one word per package name
APT_CONFIG=$MMDEBSTRAP_APT_CONFIG apt-cache madison $names \
  | awk -F'|' '{gsub(/ /, "", $1); gsub(/ /, "", $2); print $1 "=" $2}' | LC_ALL=C sort -u \
  > "$VC_HARVEST/available"
LC_ALL=C sort -u "$VC_LOCKED" | LC_ALL=C comm -23 - "$VC_HARVEST/available" \
  > "$VC_HARVEST/unavailable"
[ ! -s "$VC_HARVEST/unavailable" ]
