#!/usr/bin/env bash
# The Custos demo on one machine: installs what is missing, builds, then plays two simulated nodes.
#   node 1 and node 2 each run lasd (their own platform directory and socket);
#   both platform IDs are printed; node 1 quotes `cas` and the quote is verified; a tampered quote
#   is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build >/dev/null
B=$PWD/build
D=$(mktemp -d /tmp/custos-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

start_lasd() { # name
  mkdir -p "$D/$1"
  "$B/lasd" --socket "$D/$1/las.sock" --platform-dir "$D/$1/platform" >"$D/$1/lasd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q "LAS listening" "$D/$1/lasd.log" && return 0; sleep 0.05; done
  cat "$D/$1/lasd.log"; return 1
}

step "starting lasd on two simulated nodes"
start_lasd node1
start_lasd node2
ID1=$(grep 'public key' "$D/node1/lasd.log" | tail -n 1 | awk '{print $8}')
ID2=$(grep 'public key' "$D/node2/lasd.log" | tail -n 1 | awk '{print $8}')
grep 'LAS started' "$D/node1/lasd.log"
echo "node1 platform ID: $ID1"
echo "node2 platform ID: $ID2"

step "node1: quote of the cas program over some report data"
"$B/cas" las quote --las "$D/node1/las.sock" --report-data "$(printf 'custos demo' | sha256sum | cut -c1-64)" | tee "$D/quote.json"

step "verifying the quote (node1 is an allowed platform)"
"$B/cas" las verify "$D/quote.json" --platform "$ID1" --measurement "$(sha256sum "$B/cas" | cut -c1-64)"

step "the same quote is refused when only node2 is allowed"
if "$B/cas" las verify "$D/quote.json" --platform "$ID2"; then echo "UNEXPECTED: accepted"; exit 1; fi

step "a tampered quote (one bit of the measurement flipped) is refused"
/usr/bin/python3 - "$D/quote.json" "$D/tampered.json" <<'PY'
import base64, json, sys
q = json.load(open(sys.argv[1]))
b = bytearray(base64.b64decode(q["body"])); b[60] ^= 1
q["body"] = base64.b64encode(bytes(b)).decode()
json.dump(q, open(sys.argv[2], "w"))
PY
if "$B/cas" las verify "$D/tampered.json" --platform "$ID1"; then echo "UNEXPECTED: accepted"; exit 1; fi

step "demo done"
