#!/usr/bin/env bash
# Builds vipcast's container image here, from pinned Debian packages and locked wheels, without
# pulling anything from a container registry. Reproducible: the same commit, locks and mirror
# content give the same image ID and layer digests (bench/image_build.py). Idempotent and
# cached: a second run with the same inputs finishes in seconds.
#
#   bash scripts/build-image.sh                 build (or reuse) and tag vipcast:<version>
#   bash scripts/build-image.sh --relock        rewrite deploy/image/requirements.lock (PyPI)
#   bash scripts/build-image.sh --relock-debian rewrite deploy/image/debian.lock (the mirror)
#   bash scripts/build-image.sh --no-cache      rebuild the final stages even when tagged
#   bash scripts/build-image.sh --tag REF       also tag the result REF (under the build lock)
#
# One build at a time per cache: the script holds an flock on $VIPCAST_IMAGE_CACHE/build.lock
# from its first write to its last tag (the cache, podman's tags of earlier builds it removes,
# the vipcast:<version> tag). A second run (CI and a developer, two checkouts, two test
# sessions) waits for it, saying which process holds it, at most VIPCAST_IMAGE_LOCK_WAIT
# seconds (default 1200), then stops with an error and builds nothing.
#
# Steps (docs/image.md):
#   1. tools: podman, runc, mmdebstrap (installed with apt-get when missing and allowed)
#   2. the locks: deploy/image/requirements.lock must match pyproject.toml's dependencies,
#      deploy/image/debian.lock the package lists below
#   3. two root filesystems by `mmdebstrap --variant=minbase` from the machine's configured
#      Debian mirror with every package pinned to debian.lock's version (runtime; runtime +
#      python3-venv for the build stage), made into images by `FROM scratch` + `ADD`; cached
#      in $VIPCAST_IMAGE_CACHE (default ~/.cache/vipcast-image) and podman's store
#   4. wheels: the locked ones downloaded with their hashes checked (cp311, manylinux x86_64),
#      vipcast's own built from the tracked files of this checkout, git revision inside
#   5. the dependency image (Containerfile.deps), cached while the lock and base hold, then
#      `podman build --timestamp <commit time>` (Containerfile, --pull=never, --network=none)
#      to an untagged image; tagged only when the build succeeded
#
# Environment: VIPCAST_IMAGE_CACHE (cache dir), VIPCAST_IMAGE_NO_INSTALL=1 (never apt-get),
# VIPCAST_DEBIAN_SOURCES (apt sources file for mmdebstrap; default: the machine's),
# VIPCAST_PYTHON (a Python 3.11 with pip; default .venv/bin/python, then python3),
# VIPCAST_IMAGE_LOCK_WAIT (seconds to wait for another build's lock, default 1200).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

say() { echo "build-image: $*" >&2; }
die() { say "error: $*"; exit 1; }

CACHE=${VIPCAST_IMAGE_CACHE:-$HOME/.cache/vipcast-image}
IMAGE_DIR=deploy/image
LOCK=$IMAGE_DIR/requirements.lock
DEB_LOCK=$IMAGE_DIR/debian.lock
export CONTAINERS_CONF="$here/$IMAGE_DIR/containers.conf"
SUITE=bookworm
RUNTIME_PACKAGES=(python3 libnftables1 nftables iproute2 ca-certificates)
BUILD_PACKAGES=("${RUNTIME_PACKAGES[@]}" python3-venv)
# the wheels' target: the image's Python (Debian 12: CPython 3.11, glibc 2.36, x86_64); pip
# does not widen a manylinux_2_36 platform to older glibc tags by itself
WHEEL_TARGET=(--python-version 3.11 --implementation cp --abi cp311)
for glibc in $(seq 36 -1 5); do WHEEL_TARGET+=(--platform "manylinux_2_${glibc}_x86_64"); done
WHEEL_TARGET+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64
               --platform manylinux1_x86_64)
PIP_TOOLS_VERSION=7.7.0

relock=0
relock_debian=0
no_cache=0
extra_tag=
while [ $# -gt 0 ]; do
  case "$1" in
    --relock) relock=1 ;;
    --relock-debian) relock_debian=1 ;;
    --no-cache) no_cache=1 ;;
    --tag) [ $# -ge 2 ] && [ -n "$2" ] || die "--tag needs an image reference"
           extra_tag=$2; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
LOCK_WAIT=${VIPCAST_IMAGE_LOCK_WAIT:-1200}
[[ "$LOCK_WAIT" =~ ^[0-9]+$ ]] \
  || die "VIPCAST_IMAGE_LOCK_WAIT='$LOCK_WAIT': not a whole number of seconds"

# --- 1. tools ----------------------------------------------------------------------------
PY=${VIPCAST_PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
declare -A TOOL_PACKAGE=([podman]=podman [runc]=runc [mmdebstrap]=mmdebstrap)
missing_tools() {
  local t out=()
  for t in podman runc mmdebstrap; do command -v "$t" >/dev/null || out+=("$t"); done
  echo "${out[*]}"
}
missing=$(missing_tools)
if [ -n "$missing" ] && [ "${VIPCAST_IMAGE_NO_INSTALL:-0}" != 1 ] && [ "$(id -u)" -eq 0 ] \
   && command -v apt-get >/dev/null; then
  pkgs=()
  for t in $missing; do pkgs+=("${TOOL_PACKAGE[$t]}"); done
  say "installing Debian packages: ${pkgs[*]}"
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" \
    >&2 || true
  missing=$(missing_tools)
fi
if [ -n "$missing" ]; then
  for t in $missing; do
    say "missing: $t (Debian package ${TOOL_PACKAGE[$t]}; scripts/setup.sh installs it)"
  done
  die "cannot build the image without: $missing"
fi
"$PY" -m pip --version >/dev/null 2>&1 \
  || die "missing: pip for $PY (set VIPCAST_PYTHON, or run scripts/setup.sh for .venv)"

SOURCES=${VIPCAST_DEBIAN_SOURCES:-}
if [ -z "$SOURCES" ]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ] && grep -qE '^(URIs:|deb )' "$f"; then SOURCES=$f; break; fi
  done
fi
[ -n "$SOURCES" ] \
  || die "missing: a Debian mirror (no /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list with one; set VIPCAST_DEBIAN_SOURCES)"
[ -s "$SOURCES" ] || die "missing: the Debian mirror file $SOURCES (VIPCAST_DEBIAN_SOURCES)"
grep -qE '^(URIs:|deb )' "$SOURCES" \
  || die "missing: a Debian mirror in $SOURCES (no 'URIs:' or 'deb' line)"

mkdir -p "$CACHE"
# --- the build lock: one build per cache at a time (see the top). fd 9 stays open (and the
# lock held) until the script exits; the owner file says who holds it.
BUILD_LOCK="$CACHE/build.lock"
exec 9>>"$BUILD_LOCK"
if ! flock -n 9; then
  holder=$(cat "$BUILD_LOCK.owner" 2>/dev/null || echo "unknown process")
  say "waiting for another build that holds $BUILD_LOCK ($holder), at most ${LOCK_WAIT}s (VIPCAST_IMAGE_LOCK_WAIT)"
  flock -w "$LOCK_WAIT" 9 \
    || die "another build still holds $BUILD_LOCK after ${LOCK_WAIT}s ($holder); nothing was built. Wait for it to end, or raise VIPCAST_IMAGE_LOCK_WAIT"
  say "got $BUILD_LOCK"
fi
echo "pid $$ since $(date -u +%H:%M:%S) UTC, checkout $here" > "$BUILD_LOCK.owner"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sha() { sha256sum "$@" | cut -d' ' -f1; }
sha_text() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# --- 2. the lock -------------------------------------------------------------------------
# The lock records a hash of the dependency list it was made from; a changed list makes it stale.
deps_hash=$("$PY" - <<'EOF'
import hashlib, json, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(hashlib.sha256(json.dumps(sorted(deps)).encode()).hexdigest())
EOF
)
if [ "$relock" = 1 ]; then
  tools="$CACHE/pip-tools-$PIP_TOOLS_VERSION"
  if [ ! -x "$tools/bin/pip-compile" ]; then
    say "installing pip-tools $PIP_TOOLS_VERSION into $tools"
    "$PY" -m venv "$tools"
    "$tools/bin/pip" install -q "pip-tools==$PIP_TOOLS_VERSION"
  fi
  tmp_lock=$(mktemp)
  # the dependencies alone (not vipcast itself, which goes in as its own wheel)
  "$PY" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"]))' > "$tmp_lock.in"
  # the pins of the current lock are kept where they still fit (pip-compile reads its output)
  [ ! -s "$LOCK" ] || grep -v '^#' "$LOCK" > "$tmp_lock"
  say "resolving the runtime dependencies (pip-compile --generate-hashes)"
  (cd "$(dirname "$tmp_lock")" && "$tools/bin/pip-compile" -q --generate-hashes --allow-unsafe \
     --strip-extras --no-emit-index-url --no-emit-find-links --no-header --annotation-style=line \
     --output-file "$tmp_lock" "$tmp_lock.in")
  {
    echo "# vipcast image: the runtime dependencies, pinned with the sha256 of every file."
    echo "# GENERATED by 'bash scripts/build-image.sh --relock' from pyproject.toml; do not edit."
    echo "# vipcast-dependencies-sha256: $deps_hash"
    sed "s#$(dirname "$tmp_lock")/##g" "$tmp_lock"
  } > "$LOCK"
  rm -f "$tmp_lock" "$tmp_lock.in"
  say "wrote $LOCK"
fi
[ -s "$LOCK" ] || die "missing: $LOCK (run: bash scripts/build-image.sh --relock)"
grep -q "^# vipcast-dependencies-sha256: $deps_hash\$" "$LOCK" \
  || die "$LOCK is stale: pyproject.toml's dependencies changed since it was made (run: bash scripts/build-image.sh --relock)"

# --- 2b. the Debian lock -------------------------------------------------------------------
# deploy/image/debian.lock pins every package of both root filesystems (name=version, one
# section per root filesystem) and records the mirror's Release dates it was made from and the
# SOURCE_DATE_EPOCH of the root filesystems (the newest of those dates). It records a hash of
# the package lists and mmdebstrap options above: a change makes it stale. The lock reaches
# mmdebstrap through the hooks in deploy/image/mmdebstrap-hooks (docs/image.md).
mm_opts=(--variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
         --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
         --dpkgopt='path-include=/usr/share/doc/*/copyright'
         --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*'
         --aptopt='Acquire::Languages "none"')
HOOKS=$IMAGE_DIR/mmdebstrap-hooks
request_hash=$(sha_text "$SUITE|${mm_opts[*]}|${RUNTIME_PACKAGES[*]}|${BUILD_PACKAGES[*]}")
lock_section() {  # name -> the section's name=version lines
  awk -v s="[$1]" '/^\[/ {on = ($0 == s); next} on && NF && !/^#/' "$DEB_LOCK"
}
packages_of() {  # name -> the requested packages of that root filesystem
  if [ "$1" = runtime ]; then echo "${RUNTIME_PACKAGES[*]}"; else echo "${BUILD_PACKAGES[*]}"; fi
}
mmdebstrap_run() {  # name target harvest-dir [pinned] -> a root filesystem, its package list
  local name=$1 target=$2 harvest=$3 pinned=${4:-} log="$3/mmdebstrap.log" hooks=()
  hooks=(--customize-hook="$here/$HOOKS/customize.sh")
  if [ -n "$pinned" ]; then
    lock_section "$name" > "$harvest/locked"
    while IFS== read -r p v; do
      printf 'Package: %s\nPin: version %s\nPin-Priority: 1001\n\n' "$p" "$v"
    done < "$harvest/locked" > "$harvest/pins"
    hooks=(--setup-hook="$here/$HOOKS/setup.sh" --extract-hook="$here/$HOOKS/extract.sh"
           "${hooks[@]}")
  fi
  if ! VC_PINS=$harvest/pins VC_LOCKED=$harvest/locked VC_HARVEST=$harvest \
       SOURCE_DATE_EPOCH=${base_epoch:-0} mmdebstrap "${mm_opts[@]}" "${hooks[@]}" \
       --include="$(packages_of "$name" | tr ' ' ,)" "$SUITE" "$target" "$SOURCES" \
       >"$log" 2>&1; then
    rm -f "$target"
    if [ -s "$harvest/unavailable" ]; then
      sed "s#\$#: pinned by $DEB_LOCK [$name], not on the mirror#; s#^#  #" \
        "$harvest/unavailable" >&2
      die "the Debian mirror in $SOURCES no longer has what $DEB_LOCK pins (above); nothing was built. Run: bash scripts/build-image.sh --relock-debian (and commit the lock), or set VIPCAST_DEBIAN_SOURCES to a snapshot.debian.org archive of the lock's dates"
    fi
    tail -20 "$log" >&2
    die "mmdebstrap failed (is the Debian mirror in $SOURCES reachable?); log: $log"
  fi
}
if [ "$relock_debian" = 1 ]; then
  # every package as the mirror has it today; the lock takes what was installed
  for name in runtime build; do
    mkdir -p "$work/relock-$name"
    say "mmdebstrap $SUITE ($name, unpinned: resolving the Debian lock) from $SOURCES"
    mmdebstrap_run "$name" /dev/null "$work/relock-$name"
  done
  newest=0
  while read -r _ date; do
    t=$(date -u -d "$date" +%s); [ "$t" -le "$newest" ] || newest=$t
  done < "$work/relock-build/release"
  {
    echo "# vipcast image: the Debian packages of its two root filesystems, pinned (name=version)."
    echo "# GENERATED by 'bash scripts/build-image.sh --relock-debian' from the mirror; do not edit."
    echo "# made from these Release files of the mirror (InRelease Date):"
    sed 's/^/#   /' "$work/relock-build/release"
    echo "# on a machine whose mirror has moved on: a snapshot.debian.org archive of those dates"
    echo "# (VIPCAST_DEBIAN_SOURCES) gives the same packages"
    echo "# vipcast-debian-request-sha256: $request_hash"
    echo "# source-date-epoch: $newest"
    for name in runtime build; do
      echo "[$name]"; cat "$work/relock-$name/packages"
    done
  } > "$DEB_LOCK"
  say "wrote $DEB_LOCK"
fi
[ -s "$DEB_LOCK" ] || die "missing: $DEB_LOCK (run: bash scripts/build-image.sh --relock-debian)"
grep -q "^# vipcast-debian-request-sha256: $request_hash\$" "$DEB_LOCK" \
  || die "$DEB_LOCK is stale: the package lists, mmdebstrap options or hooks changed since it was made (run: bash scripts/build-image.sh --relock-debian)"
base_epoch=$(sed -n 's/^# source-date-epoch: \([0-9]*\)$/\1/p' "$DEB_LOCK")
[ -n "$base_epoch" ] || die "$DEB_LOCK has no '# source-date-epoch:' line (run: bash scripts/build-image.sh --relock-debian)"

# --- 3. base root filesystems --------------------------------------------------------------
lock_check() {  # name got-file -> nothing, or each difference from the lock (and exit 1)
  lock_section "$1" | awk -F= -v lock="$DEB_LOCK [$1]" '
    NR == FNR {want[$1] = $2; next}
    {got[$1] = $2}
    END {
      bad = 0
      for (p in want) {
        if (!(p in got)) {print "  " p "=" want[p] ": in " lock " but no longer installed"; bad = 1}
        else if (got[p] != want[p]) {
          print "  " p ": " lock " pins " want[p] ", the mirror gave " got[p] \
                " (it no longer has " want[p] ")"; bad = 1}
      }
      for (p in got) if (!(p in want)) {print "  " p "=" got[p] ": installed but not in " lock; bad = 1}
      exit bad
    }' - "$2" | sort
  return "${PIPESTATUS[1]}"
}
base_image() {  # name -> prints the image reference
  local name=$1 key ref tarball ctx harvest
  key=$(sha_text "$request_hash $base_epoch $(lock_section "$name") $(cat "$HOOKS"/*)" \
        | cut -c1-16)
  ref="localhost/vipcast-$name-base:$key"
  if ! podman image exists "$ref"; then
    tarball="$CACHE/rootfs/$name-$key.tar"
    if [ ! -s "$tarball" ]; then
      mkdir -p "$CACHE/rootfs"
      harvest="$CACHE/rootfs/$name-$key"
      rm -rf "$harvest"; mkdir -p "$harvest"
      say "mmdebstrap $SUITE ($name: $(packages_of "$name"), pinned by $DEB_LOCK) from $SOURCES"
      mmdebstrap_run "$name" "$tarball.part.tar" "$harvest" pinned
      if ! lock_check "$name" "$harvest/packages" > "$harvest/differences"; then
        rm -f "$tarball.part.tar"
        cat "$harvest/differences" >&2
        die "the root filesystem made from $SOURCES differs from $DEB_LOCK (above; the dependencies of a package changed?); nothing was built. Run: bash scripts/build-image.sh --relock-debian (and commit the lock)"
      fi
      mv "$tarball.part.tar" "$tarball"
    fi
    # FROM scratch + ADD (not podman import): the image's config and history are fixed by
    # --timestamp, so the same tarball gives the same image ID anywhere
    ctx="$work/base-$name"
    mkdir -p "$ctx"
    ln "$tarball" "$ctx/rootfs.tar" 2>/dev/null || cp "$tarball" "$ctx/rootfs.tar"
    podman build --pull=never --network=none --timestamp="$base_epoch" -t "$ref" \
      -f "$here/$IMAGE_DIR/Containerfile.base" "$ctx" >"$CACHE/podman-build.log" 2>&1 \
      || { tail -30 "$CACHE/podman-build.log" >&2; die "podman build of the $name base failed"; }
    rm -rf "$ctx"
  fi
  echo "$ref"
}
runtime_base=$(base_image runtime)
build_base=$(base_image build)

# --- 4. wheels ---------------------------------------------------------------------------
lock_hash=$(sha "$LOCK")
wheels="$CACHE/wheels/$lock_hash"
if [ ! -f "$wheels/.complete" ]; then
  say "downloading the locked wheels (hashes checked) into $wheels"
  rm -rf "$wheels"; mkdir -p "$wheels"
  "$PY" -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
    --only-binary=:all: "${WHEEL_TARGET[@]}" -r "$LOCK" -d "$wheels" >&2 \
    || die "pip could not download the locked wheels (is PyPI reachable?)"
  touch "$wheels/.complete"
fi

version=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
revision=unknown
epoch=0
if git rev-parse --git-dir >/dev/null 2>&1; then
  revision=$(git rev-parse --short=12 HEAD)
  [ -z "$(git status --porcelain -- pyproject.toml README.md src)" ] || revision="$revision-dirty"
  epoch=$(git log -1 --format=%ct)
fi
source_url=$(git config --get remote.origin.url 2>/dev/null || echo "https://github.com/vipcast/vipcast")

# vipcast's wheel from the tracked files as they are in this checkout (no stray files), the
# git revision written into the package (read by `vipcast version`)
mkdir -p "$work/src" "$work/context/deps" "$work/context/app"
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard -- pyproject.toml README.md src \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | xargs -0 tar -cf - | tar -C "$work/src" -xf -
else
  tar -cf - pyproject.toml README.md src | tar -C "$work/src" -xf -
fi
echo "$revision" > "$work/src/src/vipcast/REVISION"
SOURCE_DATE_EPOCH=$epoch "$PY" -m pip wheel -q --disable-pip-version-check --no-deps \
  -w "$work/dist" "$work/src" >&2 || die "building vipcast's wheel failed"
wheel=$(ls "$work"/dist/vipcast-*.whl)
# the build context: deps/ (locked wheels + the lock) and app/ (vipcast's wheel + its hash);
# fixed mtimes so that podman's layer cache keeps the deps stage while the lock holds
cp "$wheels"/*.whl "$work/context/deps/"
grep -v '^#' "$LOCK" | sed '/^\s*$/d' > "$work/context/deps/requirements.txt"
cp "$wheel" "$work/context/app/"
echo "vipcast==$version --hash=sha256:$(sha "$wheel")" > "$work/context/app/requirements.txt"

# --- 5. the image --------------------------------------------------------------------------
# the dependency image: the locked wheels in a venv on the build base; cached (tagged) while
# the lock, the base and Containerfile.deps hold. Its files are deterministic (no .pyc with
# timestamps: compiled with checked hashes), so a cached one and a fresh one give the same
# final image.
cp "$IMAGE_DIR/Containerfile" "$IMAGE_DIR/Containerfile.deps" "$work/context/"
find "$work/context" -exec touch -h -d "@$epoch" {} +
deps_ref="localhost/vipcast-deps:$(cat "$LOCK" <(podman image inspect --format '{{.Id}}' \
          "$build_base") "$IMAGE_DIR/Containerfile.deps" | sha256sum | cut -c1-16)"
key=$(cd "$work/context" && find . -type f -print0 | sort -z | xargs -0 sha256sum \
      | cat - <(podman image inspect --format '{{.Id}}' "$runtime_base" "$build_base") \
      <(echo "$version $revision $source_url $epoch $deps_ref") | sha256sum | cut -c1-16)
cached="localhost/vipcast:build-$key"
tag="localhost/vipcast:$version"
if podman image exists "$cached" && [ "$no_cache" = 0 ]; then
  say "up to date: $cached"
else
  if ! podman image exists "$deps_ref"; then
    say "podman build $IMAGE_DIR/Containerfile.deps (the locked dependencies)"
    podman build --pull=never --network=none --timestamp="$base_epoch" -t "$deps_ref" \
      --build-arg BUILD_BASE="$build_base" \
      -f "$work/context/Containerfile.deps" "$work/context" >"$CACHE/podman-build.log" 2>&1 \
      || { tail -30 "$CACHE/podman-build.log" >&2
           die "podman build of the dependency image failed: nothing was tagged"; }
    podman images --format '{{.Repository}}:{{.Tag}}' localhost/vipcast-deps \
      | { grep -vx "$deps_ref" || true; } \
      | while read -r old; do podman rmi "$old" >/dev/null 2>&1 || true; done
  fi
  say "podman build (base $runtime_base, dependencies $deps_ref, timestamp $epoch)"
  # --timestamp: the image's created time, its history and every file's mtime are the
  # commit's time, so the same commit gives the same image ID (docs/image.md). Never podman's
  # layer cache here: podman 4.3 reuses a cached layer (and a cached stage) whatever
  # --timestamp says, so a build after another commit kept that commit's file times and got
  # another ID than a fresh build (CI). The tagged image above is this script's cache.
  podman build --pull=never --network=none --timestamp="$epoch" --no-cache \
    --build-arg RUNTIME_BASE="$runtime_base" --build-arg DEPS_IMAGE="$deps_ref" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    --build-arg SOURCE="$source_url" \
    --iidfile "$work/iid" -f "$work/context/Containerfile" "$work/context" \
    >"$CACHE/podman-build.log" 2>&1 \
    || { tail -30 "$CACHE/podman-build.log" >&2
         die "podman build failed: nothing was tagged (log: $CACHE/podman-build.log)"; }
  podman tag "$(cat "$work/iid")" "$cached"
  # the build stage's leftover image and earlier builds of this script (only ours, by label/tag)
  for id in $(podman images -q --filter dangling=true --filter label=io.vipcast.stage=build); do
    podman rmi "$id" >/dev/null 2>&1 || true
  done
  podman images --format '{{.Repository}}:{{.Tag}}' localhost/vipcast \
    | { grep ':build-' | grep -vx "$cached" || true; } \
    | while read -r old; do podman rmi "$old" >/dev/null 2>&1 || true; done
fi
podman tag "$cached" "$tag"
[ -z "$extra_tag" ] || podman tag "$cached" "$extra_tag"
say "tagged $tag${extra_tag:+ and $extra_tag} (revision $revision, image $(podman image inspect --format '{{.Id}}' "$cached" | cut -c1-12))"
echo "$tag"
