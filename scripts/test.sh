#!/usr/bin/env bash
# Runs every Custos test: cmocka unit tests and pytest integration tests on a normal build and on an
# ASan+UBSan build, then a short run of every libFuzzer harness. Ends with "N passed, N failed".
# Options: --quick (normal build only, no fuzzing), --fuzz-seconds N (default 20).
set -uo pipefail
cd "$(dirname "$0")/.."
quick=0
fuzz_seconds=20
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --fuzz-seconds) fuzz_seconds=$2; shift ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
PY=/usr/bin/python3
passed=0
failed=0
failures=()

count() { # name status
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

run_unit() { # build dir
  local dir=$1 t out
  for t in "$dir"/tests/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    out=$(CMOCKA_MESSAGE_OUTPUT=TAP "$t" 2>&1)
    local ok notok
    ok=$(grep -c '^ok ' <<<"$out")
    notok=$(grep -c '^not ok ' <<<"$out")
    passed=$((passed + ok))
    failed=$((failed + notok))
    if [ "$notok" -gt 0 ] || [ "$ok" -eq 0 ]; then
      [ "$ok" -eq 0 ] && [ "$notok" -eq 0 ] && failed=$((failed + 1))
      failures+=("$dir: $(basename "$t")")
      grep -A3 '^not ok ' <<<"$out" | head -40
    fi
    echo "unit $(basename "$t") ($dir): $ok passed, $notok failed"
  done
}

run_pytest() { # build dir
  local dir=$1 xml
  xml=$(mktemp)
  CUSTOS_BUILD="$PWD/$dir" TPM2_SEAL_TOOL="$PWD/$dir/tests/tpm2_seal_tool" \
    $PY -m pytest -q -p no:cacheprovider --junitxml="$xml" tests/integration 2>&1 | tail -n 30
  local counts
  counts=$($PY - "$xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
t = f = 0
for s in root.iter("testsuite"):
    t += int(s.get("tests", 0)); f += int(s.get("failures", 0)) + int(s.get("errors", 0)) + int(s.get("skipped", 0))
print(t - f, f)
PYEOF
)
  rm -f "$xml"
  passed=$((passed + ${counts% *}))
  failed=$((failed + ${counts#* }))
  [ "${counts#* }" -eq 0 ] || failures+=("$dir: pytest")
}

# A skipped test counts as failed: nothing here is optional.
scripts/build.sh build || { echo "0 passed, 1 failed"; exit 1; }
run_unit build
run_pytest build

if [ $quick -eq 0 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  if scripts/build.sh build-asan -Dsanitize_all=true; then
    run_unit build-asan
    run_pytest build-asan
  else
    count "build-asan" 1
  fi
  if CC=clang scripts/build.sh build-fuzz -Dfuzz=true -Dsanitize_all=true; then
    for f in build-fuzz/fuzz/fuzz_*; do
      [ -f "$f" ] && [ -x "$f" ] || continue
      name=$(basename "$f")
      corpus="fuzz/corpus/${name#fuzz_}"
      work=$(mktemp -d)
      [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
      out=$("$f" -max_total_time="$fuzz_seconds" -print_final_stats=1 "$work" 2>&1)
      st=$?
      echo "fuzz $name: $(grep -o 'stat::number_of_executed_units: *[0-9]*' <<<"$out" | awk '{print $2}') execs in ${fuzz_seconds}s, exit $st"
      [ $st -eq 0 ] || tail -n 30 <<<"$out"
      count "fuzz $name" $st
      rm -rf "$work"
    done
  else
    count "build-fuzz" 1
  fi
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo "failures:"
  printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
