#!/usr/bin/env bash
# Builds Custos's container images (deploy/Containerfile) with buildah, offline: no image registry is
# reachable, so the Debian bookworm bases are made here from Debian's packages with mmdebstrap and
# imported into buildah's storage. Images, tagged with meson.build's version:
#   custos/las:V  custos/cas:V  custos/cas-backup-controller:V   (localhost/... in buildah's storage)
# Steps (one line each; the tools' output goes to the log file, its tail printed on failure):
#   1. base root file systems with mmdebstrap (runtime libraries; build tools), cached as tarballs
#      under ~/.cache/custos/images keyed by suite, variant and package list: made once;
#   2. each imported into buildah (from scratch, mount, untar, commit) unless already there;
#   3. `buildah build` of each target, chroot isolation, vfs storage, layers cached.
# Storage: ${CUSTOS_IMAGES_CACHE:-~/.cache/custos/images}/storage (buildah --root), not the system's.
# Needs root (mmdebstrap --mode=root, buildah's chroot isolation), buildah and mmdebstrap
# (scripts/install-deps.sh). Options: --list (print the image names and exit), --storage (print the
# buildah storage options and exit), --save DIR (after building, write each image as an OCI archive
# DIR/<name>-<version>.tar, to load into a cluster's container runtime: no registry is reachable).
#
# What cannot run here: nothing of the build. Pushing to a registry (none is reachable) and running the
# images under a real kubelet (none can run here: tests/integration/kube.py's stand-in kubelet runs the
# build directory's programs instead) are not done; the tests run each image's programs with
# `buildah run` inside the image's root file system.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
VARIANT=essential
VERSION=$(sed -n "s/^project('custos', 'c', version: '\([^']*\)'.*/\1/p" meson.build)
[ -n "$VERSION" ] || { echo "images.sh: no project version in meson.build" >&2; exit 1; }
TARGETS=(las cas cas-backup-controller)
CAS_UID=${CAS_UID:-1000}
# Run-time libraries of lasd, casd, cas, cas-run and the controller (ldd), plus the TCTI modules
# tpm2-tss loads at run time (device: for /dev/tpmrm0, swtpm: for tests).
RUNTIME_PKGS=(libssl3 libjansson4 libyaml-0-2 liblmdb0 libmicrohttpd12 libgnutls30 libcurl4
  libtss2-esys-3.0.2-0 libtss2-mu0 libtss2-rc0 libtss2-sys1 libtss2-tctildr0 libtss2-tcti-device0
  libtss2-tcti-swtpm0)
# What meson.build needs (the same -dev packages as scripts/install-deps.sh; cmocka because
# tests/meson.build requires it at configure time).
BUILD_PKGS=(build-essential meson ninja-build pkg-config libssl-dev libjansson-dev libyaml-dev liblmdb-dev
  libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev libtss2-dev libcmocka-dev)
# No documentation, manual pages or translations in the images.
DPKG_OPTS=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright')

CACHE=${CUSTOS_IMAGES_CACHE:-$HOME/.cache/custos/images}
STORAGE=(--root "$CACHE/storage" --runroot "$CACHE/run" --storage-driver vfs)
LOG=$CACHE/images.log

SAVE=
case "${1:-}" in
  --list) for t in "${TARGETS[@]}"; do echo "localhost/custos/$t:$VERSION"; done; exit 0 ;;
  --storage) echo "${STORAGE[*]}"; exit 0 ;;
  --save) SAVE=${2:?--save needs a directory}; mkdir -p "$SAVE"; SAVE=$(cd "$SAVE" && pwd) ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  "") ;;
  *) echo "images.sh: unknown option $1" >&2; exit 2 ;;
esac

for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "images.sh: $tool missing: run scripts/install-deps.sh" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "images.sh: needs root (mmdebstrap --mode=root, buildah chroot isolation)" >&2; exit 1; }
mkdir -p "$CACHE"
: >"$LOG"
t_all=$(date +%s)

PROGRESS_NAME=images
# shellcheck source=scripts/progress.sh
. "$(dirname "$0")/progress.sh"

bah() { buildah "${STORAGE[@]}" "$@"; }

# The machine's own apt sources (the Debian archive it already uses); the project names no host.
SOURCES=/etc/apt/sources.list.d/debian.sources
[ -f "$SOURCES" ] || SOURCES=/etc/apt/sources.list
[ -f "$SOURCES" ] || { echo "images.sh: no apt sources (/etc/apt/sources.list.d/debian.sources)" >&2; exit 1; }

make_rootfs() { # out.tar packages...
  local out=$1
  shift
  local incl
  incl=$(IFS=,; echo "$*")
  rm -f "$out.tmp"
  mmdebstrap --mode=root --variant="$VARIANT" --format=tar "${DPKG_OPTS[@]}" --include="$incl" \
    "$SUITE" "$out.tmp" "$SOURCES"
  mv "$out.tmp" "$out"
}

import_rootfs() { # tar image
  local tar=$1 image=$2 ctr mnt
  ctr=$(bah from --name "import-$$" scratch)
  mnt=$(bah mount "$ctr")
  tar -C "$mnt" --numeric-owner -xf "$tar"
  bah umount "$ctr"
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --label "custos.base.key=$(basename "$tar" .tar)" "$ctr"
  bah commit --rm "$ctr" "$image"
}

base() { # kind packages...: makes (cached) and imports one base; sets BASE_IMAGE
  local kind=$1
  shift
  local key tar
  key=$(printf '%s\n' "$SUITE" "$VARIANT" "${DPKG_OPTS[@]}" "$@" | LC_ALL=C sort | sha256sum | cut -c1-16)
  tar=$CACHE/base-$kind-$SUITE-$key.tar
  BASE_IMAGE=localhost/custos-base-$kind:$SUITE-$key
  if [ -f "$tar" ]; then
    echo "images: $kind base root file system cached ($tar)"
  else
    step "$kind base root file system (mmdebstrap $SUITE, ${#@} packages)" make_rootfs "$tar" "$@"
  fi
  if bah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "images: $kind base image $BASE_IMAGE already imported"
  else
    step "import $kind base as $BASE_IMAGE" import_rootfs "$tar" "$BASE_IMAGE"
  fi
}

base runtime "${RUNTIME_PKGS[@]}"
RUNTIME_BASE=$BASE_IMAGE
base build "${BUILD_PKGS[@]}"
BUILD_BASE=$BASE_IMAGE

# The build stage first, tagged: its layers are then kept by the prune below and reused while the
# sources it copies (.containerignore) are unchanged.
step "build stage (meson, ninja) as localhost/custos-build:$VERSION" bah build --isolation chroot --layers \
  --pull-never --build-arg "BUILD_BASE=$BUILD_BASE" --build-arg "RUNTIME_BASE=$RUNTIME_BASE" \
  -f deploy/Containerfile --target build -t "localhost/custos-build:$VERSION" .
for t in "${TARGETS[@]}"; do
  step "image custos/$t:$VERSION" bah build --isolation chroot --layers --pull-never \
    --build-arg "BUILD_BASE=$BUILD_BASE" --build-arg "RUNTIME_BASE=$RUNTIME_BASE" --build-arg "CAS_UID=$CAS_UID" \
    -f deploy/Containerfile --target "$t" -t "localhost/custos/$t:$VERSION" .
done
if [ -n "$SAVE" ]; then
  for t in "${TARGETS[@]}"; do
    step "save $SAVE/$t-$VERSION.tar" bah push "localhost/custos/$t:$VERSION" "oci-archive:$SAVE/$t-$VERSION.tar:custos/$t:$VERSION"
  done
fi
# Layers of earlier builds that no image uses any more (every source change makes new ones).
step "prune dangling images" bah rmi --prune
echo "images: ${TARGETS[*]} built as localhost/custos/{$(IFS=,; echo "${TARGETS[*]}")}:$VERSION in $(($(date +%s) - t_all)) s (log: $LOG)"
