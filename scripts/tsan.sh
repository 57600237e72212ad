#!/usr/bin/env bash
# ThreadSanitizer over casd's concurrent paths: builds lasd, casd, cas and the two request benchmarks
# with -fsanitize=thread in build-tsan, runs bench_attest (POST /v1/run from 1, 8 and 32 clients:
# sessions and policy caches, quote checks) and bench_cas (secrets read and written from 8 clients:
# group commit, TLS), and fails on any report (scripts/test.sh runs it with SECONDS=1: about a minute
# with the build); the figures the benchmarks print under TSan mean nothing. Usage: scripts/tsan.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-2}
if [ ! -f build-tsan/build.ninja ]; then
  CFLAGS="-fsanitize=thread -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=thread" \
    meson setup build-tsan -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C build-tsan casd lasd cas bench/bench_attest bench/bench_cas >/dev/null
logs=$(mktemp -d)
export TSAN_OPTIONS="log_path=$logs/tsan halt_on_error=0 suppressions=$PWD/tests/tsan/jansson.supp"
status=0
for b in bench_attest bench_cas; do
  if ! build-tsan/bench/$b build-tsan "$secs" >"$logs/$b.out" 2>&1; then
    echo "tsan: $b failed (its output: $logs/$b.out)"
    status=1
  fi
done
reports=$(cat "$logs"/tsan.* 2>/dev/null | grep -c "WARNING: ThreadSanitizer" || true)
if [ "$reports" != 0 ]; then
  grep -h "SUMMARY: ThreadSanitizer" "$logs"/tsan.* | sort | uniq -c
  echo "tsan: $reports report(s) in $logs"
  exit 1
fi
echo "tsan: no reports (bench_attest, bench_cas; logs in $logs)"
exit $status
