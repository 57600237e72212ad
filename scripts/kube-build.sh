#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 from Debian bookworm's
# `kubernetes` source package (the integration tests run a real Kubernetes control plane; Debian packages
# no kube-apiserver binary). Recipe and its traps: shared notes "kube-apiserver.md".
#
# The binaries are cached outside the tree, keyed by version:
#   ${CUSTOS_KUBE_CACHE:-$HOME/.cache/custos/kube-1.20.2}/bin/{kube-apiserver,kube-controller-manager,kube-scheduler}
# When all three are there it exits at once. Otherwise one line per step; the tools' own output goes to
# a log file, printed (its path and its tail) on failure. Needs golang-1.19-go (scripts/install-deps.sh).
# v1.20.2 is out of support: the binaries are a test fixture, run on 127.0.0.1 only.
set -euo pipefail

KUBE_VERSION=1.20.2
DEB_SOURCE=kubernetes
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
ORIG=kubernetes_1.20.5+really1.20.2.orig.tar.gz
ORIG_SHA256=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc
REFLECT2_PKG=golang-github-modern-go-reflect2-dev
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler)
GO=${GO:-/usr/lib/go-1.19/bin/go}

CACHE=${CUSTOS_KUBE_CACHE:-$HOME/.cache/custos/kube-$KUBE_VERSION}
BIN=$CACHE/bin
WORK=$CACHE/work
LOG=$CACHE/build.log

have_all() {
  local c
  for c in "${COMPONENTS[@]}"; do [ -x "$BIN/$c" ] || return 1; done
}
if have_all; then
  echo "kube-build: v$KUBE_VERSION cached in $BIN"
  exit 0
fi

[ -x "$GO" ] || { echo "kube-build: $GO missing: run scripts/install-deps.sh (golang-1.19-go)" >&2; exit 1; }
mkdir -p "$BIN" "$WORK"
: >"$LOG"
t_all=$(date +%s)

PROGRESS_NAME=kube-build
# shellcheck source=scripts/progress.sh
. "$(dirname "$0")/progress.sh"

# --- apt: a private configuration that adds deb-src to the archive the machine already uses ---------
APT=$WORK/apt
apt_sources() {
  rm -rf "$APT"
  mkdir -p "$APT/sources.list.d" "$APT/lists/partial" "$APT/cache/archives/partial"
  local f n=0
  # deb822 files: every stanza becomes "Types: deb deb-src"; one-line files: each deb line gets its deb-src twin
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -E 's/^Types:.*$/Types: deb deb-src/' "$f" >"$APT/sources.list.d/$(basename "$f")"
    n=$((n + 1))
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    grep -E '^[[:space:]]*deb[[:space:]]' "$f" | sed -E 'p; s/^([[:space:]]*)deb([[:space:]])/\1deb-src\2/' \
      >"$APT/sources.list.d/$(basename "$f" .list)-src.list" || true
    n=$((n + 1))
  done
  [ $n -gt 0 ] || { echo "no apt sources found in /etc/apt"; return 1; }
  cat "$APT"/sources.list.d/*
}
apt_private() {
  apt-get -q -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$APT/sources.list.d" \
    -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" -o Debug::NoLocking=1 \
    -o APT::Sandbox::User="$(id -un)" "$@"
}

SRC=$WORK/src
download() {
  mkdir -p "$SRC"
  local have_orig=0 have_reflect2=0
  if [ -f "$SRC/$ORIG" ] && echo "$ORIG_SHA256  $SRC/$ORIG" | sha256sum -c --status; then have_orig=1; fi
  if compgen -G "$SRC/${REFLECT2_PKG}_*.deb" >/dev/null; then have_reflect2=1; fi
  [ $have_orig -eq 1 ] && [ $have_reflect2 -eq 1 ] || apt_private update
  if [ $have_orig -eq 1 ]; then
    echo "already downloaded: $SRC/$ORIG"
  else
    (cd "$SRC" && apt_private source --download-only "$DEB_SOURCE=$DEB_VERSION")
  fi
  echo "$ORIG_SHA256  $SRC/$ORIG" | sha256sum -c
  [ $have_reflect2 -eq 1 ] || (cd "$SRC" && apt_private download "$REFLECT2_PKG")
}

GOPATH_DIR=$WORK/gopath
TREE=$GOPATH_DIR/src/k8s.io/kubernetes
export GOPATH=$GOPATH_DIR GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0
export GOCACHE=$WORK/go-cache
unpack() {
  rm -rf "$GOPATH_DIR"
  mkdir -p "$TREE"
  tar -xzf "$SRC/$ORIG" -C "$TREE" --strip-components=1
  [ -f "$TREE/cmd/kube-apiserver/apiserver.go" ] || { echo "unexpected tarball layout"; return 1; }
  # Trap 3: the vendored modern-go/reflect2 1.0.1 faults under Go >= 1.18 (UnsafeIterate); Debian's
  # 1.0.2 replaces it.
  local x=$WORK/reflect2 dst=$TREE/vendor/github.com/modern-go/reflect2
  rm -rf "$x"
  dpkg-deb -x "$SRC/$REFLECT2_PKG"_*.deb "$x"
  local from
  from=$(dirname "$(find "$x" -path '*/github.com/modern-go/reflect2/reflect2.go' | head -n 1)")
  [ -d "$from" ] || { echo "reflect2 sources not found in the .deb"; return 1; }
  rm -f "$dst"/*.go "$dst"/*.s
  find "$from" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' -exec cp {} "$dst"/ \;
  ls "$dst"
}

# Trap 2: pkg/generated/openapi/zz_generated.openapi.go is made by `make`; generate it the same way
# (every package tagged +k8s:openapi-gen=, staging packages named by their vendor/ path).
openapi() {
  cd "$TREE"
  "$GO" build -o "$WORK/openapi-gen" k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen
  local pkgs
  pkgs=$(grep -rl --include='*.go' '+k8s:openapi-gen=' pkg cmd plugin staging/src \
    | grep -v '_test\.go$' | xargs -n1 dirname | LC_ALL=C sort -u \
    | sed -e 's|^staging/src/|k8s.io/kubernetes/vendor/|' -e 't' -e 's|^|k8s.io/kubernetes/|' | paste -sd, -)
  echo "packages: $(tr ',' '\n' <<<"$pkgs" | wc -l)"
  "$WORK/openapi-gen" --logtostderr -v 1 -i "$pkgs" -p k8s.io/kubernetes/pkg/generated/openapi \
    -O zz_generated.openapi -h hack/boilerplate/boilerplate.generatego.txt \
    -r "$WORK/api-violations.list" -o "$GOPATH_DIR/src"
  test -s pkg/generated/openapi/zz_generated.openapi.go
}

# Trap 1: `-mod=vendor` refuses the tree's go.mod; GOPATH mode (GO111MODULE=off) builds the vendor/ tree.
V=k8s.io/kubernetes/vendor/k8s.io
LDFLAGS="-s -w"
for p in $V/component-base/version $V/client-go/pkg/version; do
  LDFLAGS+=" -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=archive"
  LDFLAGS+=" -X $p.buildDate=1970-01-01T00:00:00Z"
done
build_one() {
  cd "$TREE"
  "$GO" build -tags providerless -ldflags "$LDFLAGS" -o "$BIN/.$1.tmp" "k8s.io/kubernetes/cmd/$1"
  "$BIN/.$1.tmp" --version
  mv "$BIN/.$1.tmp" "$BIN/$1"
}

step "apt sources with deb-src (private copy)" apt_sources
step "download $DEB_SOURCE $DEB_VERSION and $REFLECT2_PKG" download
step "unpack into GOPATH, reflect2 1.0.2" unpack
step "openapi-gen" openapi
for c in "${COMPONENTS[@]}"; do
  [ -x "$BIN/$c" ] && { echo "kube-build: $c cached"; continue; }
  step "build $c" build_one "$c"
done
have_all
# The binaries are all that is kept: the unpacked tree and the Go cache are ~2 GB.
rm -rf "$GOPATH_DIR" "$GOCACHE" "$WORK/reflect2" "$WORK/openapi-gen"
echo "kube-build: v$KUBE_VERSION built in $(($(date +%s) - t_all)) s into $BIN"
