#!/usr/bin/env bash
# Installs every Debian package Custos needs to build, test, fuzz and run its demo.
set -euo pipefail
PKGS=(
  build-essential meson ninja-build pkg-config clang libclang-rt-dev
  libssl-dev openssl libjansson-dev libyaml-dev liblmdb-dev libmicrohttpd-dev libgnutls28-dev
  libcurl4-openssl-dev libtss2-dev swtpm swtpm-tools tpm2-tools
  libcmocka-dev python3 python3-pytest python3-cryptography procps curl strace util-linux
  clang-format-14
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
