#!/bin/sh
# mmdebstrap --customize-hook of scripts/build-image.sh, run before mmdebstrap cleans up:
# - writes what was installed (name=version, sorted) and the mirror's Release dates into
#   $VC_HARVEST, for the lock check (or for --relock-debian);
# - removes the pins and replaces the machine's apt sources with Debian's public mirror, so
#   that the root filesystem does not depend on which mirror made it.
# $1: the root filesystem being made.
set -eu
dpkg-query --admindir="$1/var/lib/dpkg" -W -f '${Package}=${Version}\n' | LC_ALL=C sort \
  > "$VC_HARVEST/packages"
for f in "$1"/var/lib/apt/lists/*InRelease; do
  [ -e "$f" ] || continue
  printf '%s %s\n' "$(basename "$f")" "$(sed -n 's/^Date: //p' "$f" | head -1)"
done | LC_ALL=C sort > "$VC_HARVEST/release"
rm -f "$1/etc/apt/preferences.d/vipcast-lock.pref" "$1/etc/apt/sources.list"
rm -f "$1"/etc/apt/sources.list.d/*
cat > "$1/etc/apt/sources.list.d/debian.sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
