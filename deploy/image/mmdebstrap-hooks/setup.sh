#!/bin/sh
# mmdebstrap --setup-hook of scripts/build-image.sh: apt takes each package at the version
# deploy/image/debian.lock pins (priority 1001 wins over any newer version on the mirror; a
# pinned version the mirror no longer has is caught by the build script's check).
# $1: the root filesystem being made; VC_PINS: the apt preferences made from the lock.
set -eu
mkdir -p "$1/etc/apt/preferences.d"
cp "$VC_PINS" "$1/etc/apt/preferences.d/vipcast-lock.pref"
