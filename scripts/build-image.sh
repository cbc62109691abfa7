#!/usr/bin/env bash
# Builds vipcast's container image here, from Debian packages and locked wheels, without
# pulling anything from a container registry. Idempotent and cached: a second run with the
# same sources, lock and base finishes in seconds.
#
#   bash scripts/build-image.sh            build (or reuse) and tag vipcast:<version>
#   bash scripts/build-image.sh --relock   rewrite deploy/image/requirements.lock (PyPI)
#
# Steps (docs/image.md):
#   1. tools: podman, runc, mmdebstrap (installed with apt-get when missing and allowed)
#   2. the lock deploy/image/requirements.lock must match pyproject.toml's dependencies
#   3. wheels: the locked ones downloaded with their hashes checked (cp311, manylinux x86_64),
#      vipcast's own built from the tracked files of this checkout, git revision inside
#   4. two root filesystems by `mmdebstrap --variant=minbase` from the machine's configured
#      Debian mirror (runtime; runtime + python3-venv for the build stage), imported with
#      `podman import`; cached in $VIPCAST_IMAGE_CACHE (default ~/.cache/vipcast-image)
#   5. `podman build` (deploy/image/Containerfile, --pull=never, --network=none) to an
#      untagged image; tagged only when the build succeeded
#
# Environment: VIPCAST_IMAGE_CACHE (cache dir), VIPCAST_IMAGE_NO_INSTALL=1 (never apt-get),
# VIPCAST_DEBIAN_SOURCES (apt sources file for mmdebstrap; default: the machine's),
# VIPCAST_PYTHON (a Python 3.11 with pip; default .venv/bin/python, then python3).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

say() { echo "build-image: $*" >&2; }
die() { say "error: $*"; exit 1; }

CACHE=${VIPCAST_IMAGE_CACHE:-$HOME/.cache/vipcast-image}
IMAGE_DIR=deploy/image
LOCK=$IMAGE_DIR/requirements.lock
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
for arg in "$@"; do
  case "$arg" in
    --relock) relock=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done

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

# --- 3. wheels ---------------------------------------------------------------------------
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

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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

# --- 4. base root filesystems --------------------------------------------------------------
mm_opts=(--variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
         --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
         --dpkgopt='path-include=/usr/share/doc/*/copyright'
         --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*'
         --aptopt='Acquire::Languages "none"')
base_image() {  # name packages... -> prints the image reference
  local name=$1; shift
  local key ref tarball
  key=$(sha_text "$SUITE ${mm_opts[*]} $* $(cat "$SOURCES")" | cut -c1-16)
  ref="localhost/vipcast-$name-base:$key"
  if ! podman image exists "$ref"; then
    tarball="$CACHE/rootfs/$name-$key.tar"
    if [ ! -s "$tarball" ]; then
      mkdir -p "$CACHE/rootfs"
      say "mmdebstrap $SUITE ($name: $*) from $SOURCES"
      local log="$CACHE/rootfs/$name-$key.log"
      SOURCE_DATE_EPOCH=$epoch mmdebstrap "${mm_opts[@]}" --include="$(IFS=,; echo "$*")" \
        "$SUITE" "$tarball.part.tar" "$SOURCES" >"$log" 2>&1 \
        || { tail -20 "$log" >&2; rm -rf "$tarball.part.tar"
             die "mmdebstrap failed (is the Debian mirror in $SOURCES reachable?); log: $log"; }
      mv "$tarball.part.tar" "$tarball"
    fi
    podman import --quiet "$tarball" "$ref" >/dev/null || die "podman import $tarball failed"
  fi
  echo "$ref"
}
runtime_base=$(base_image runtime "${RUNTIME_PACKAGES[@]}")
build_base=$(base_image build "${BUILD_PACKAGES[@]}")

# --- 5. the image --------------------------------------------------------------------------
cp "$IMAGE_DIR/Containerfile" "$work/context/Containerfile"
find "$work/context" -exec touch -h -d @0 {} +
key=$(cd "$work/context" && find . -type f -print0 | sort -z | xargs -0 sha256sum \
      | cat - <(podman image inspect --format '{{.Id}}' "$runtime_base" "$build_base") \
      <(echo "$version $revision $source_url") | sha256sum | cut -c1-16)
cached="localhost/vipcast:build-$key"
tag="localhost/vipcast:$version"
if podman image exists "$cached"; then
  say "up to date: $cached"
else
  # the deps stage first, tagged: the tag keeps it (and podman's layer cache of it) while the
  # lock and the base hold, so a source change only rebuilds the small app stage
  deps_ref="localhost/vipcast-deps:$(cat "$LOCK" <(podman image inspect --format '{{.Id}}' \
            "$build_base") "$IMAGE_DIR/Containerfile" | sha256sum | cut -c1-16)"
  if ! podman image exists "$deps_ref"; then
    say "podman build --target deps (the locked dependencies)"
    podman build --pull=never --network=none --target deps -t "$deps_ref" \
      --build-arg RUNTIME_BASE="$runtime_base" --build-arg BUILD_BASE="$build_base" \
      -f "$work/context/Containerfile" "$work/context" >"$CACHE/podman-build.log" 2>&1 \
      || { tail -30 "$CACHE/podman-build.log" >&2
           die "podman build of the dependency stage failed: nothing was tagged"; }
    podman images --format '{{.Repository}}:{{.Tag}}' localhost/vipcast-deps \
      | { grep -vx "$deps_ref" || true; } \
      | while read -r old; do podman rmi "$old" >/dev/null 2>&1 || true; done
  fi
  say "podman build (base $runtime_base)"
  # no --timestamp: with it, podman's layer cache never matches and every build reinstalls
  # the dependencies; the cache key above already names the inputs
  podman build --pull=never --network=none \
    --build-arg RUNTIME_BASE="$runtime_base" --build-arg BUILD_BASE="$build_base" \
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
say "tagged $tag (revision $revision)"
echo "$tag"
