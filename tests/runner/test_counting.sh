#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Self-test of scripts/test_count.sh (how scripts/test.sh counts): fake and real test programs that
# pass, leak, crash half-way, skip, or never write a result must be counted as failing. Prints TAP
# (scripts/test.sh counts it like any unit test). Needs cc, cmocka and ASan (the build's own deps).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-/usr/bin/python3}
. scripts/test_count.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
fails=0
echo "1..15"

check() { # description expected "PASSED FAILED" actual tally
  n=$((n + 1))
  local got
  got=$(cut -d' ' -f1-2 <<<"$3")
  if [ "$got" = "$2" ]; then
    echo "ok $n - $1"
  else
    echo "not ok $n - $1: expected '$2', counted '$3'"
    fails=$((fails + 1))
  fi
}

tap() { # exit status, then TAP lines
  local st=$1
  shift
  printf '%s\n' "$@" | tap_tally "$st"
}

check "all ok, exit 0" "3 0" "$(tap 0 1..3 'ok 1 - a' 'ok 2 - b' 'ok 3 - c' '# ok - tests')"
check "all ok, exit 1 (a leak report after the last test)" "3 1" "$(tap 1 1..3 'ok 1 - a' 'ok 2 - b' 'ok 3 - c')"
check "crash in test 2 of 3: it and test 3 fail" "1 2" "$(tap 1 1..3 'ok 1 - a')"
check "nothing printed, killed by a signal" "0 1" "$(tap 139)"
check "one not ok" "2 1" "$(tap 1 1..3 'ok 1 - a' 'not ok 2 - b' 'ok 3 - c')"
check "a skipped test fails" "2 1" "$(tap 0 1..3 'ok 1 - a' 'ok 2 # SKIP b' 'ok 3 - c')"
check "two cmocka groups: plans add up" "3 1" "$(tap 1 1..2 'ok 1 - a' 'ok 2 - b' 1..2 'ok 1 - c')"
check "ok lines but no plan" "2 1" "$(tap 0 'ok 1 - a' 'ok 2 - b')"

# Real cmocka programs under ASan: a leak (every test ok, exit 1) and a heap overflow in test 2 of 3.
cat >"$work/t.c" <<'CEOF'
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
static void t_ok(void **s) { (void)s; assert_int_equal(1, 1); }
static void t_bad(void **s)
{
    (void)s;
    char *volatile p = malloc(4);
    volatile int i = 8;
#ifdef CRASH
    p[i] = 1;
    free(p);
#else
    p[0] = (char)i; /* leaked */
    p = NULL;
#endif
}
int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(t_ok), cmocka_unit_test(t_bad), cmocka_unit_test(t_ok)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
CEOF
real() { # name, cc flags
  local name=$1 out st
  shift
  if ! cc -g -fsanitize=address "$@" -o "$work/$name" "$work/t.c" -lcmocka 2>"$work/$name.cc"; then
    echo "cannot build $name: $(cat "$work/$name.cc")" >&2
    echo "0 0 not built"
    return
  fi
  out=$(CMOCKA_MESSAGE_OUTPUT=TAP ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 "$work/$name" 2>&1)
  st=$?
  tap_tally "$st" <<<"$out"
}
check "real cmocka program, leak under ASan" "3 1" "$(real leak)"
check "real cmocka program, heap overflow in test 2 of 3" "1 2" "$(real crash -DCRASH)"

# pytest: an import error, a passing test, no test at all, and result files that were never written.
pyt() { # test dir: runs pytest like scripts/test.sh does and tallies its junit file
  local xml=$work/$1.xml st
  $PY -m pytest -q -p no:cacheprovider --junitxml="$xml" "$work/$1" >"$work/$1.out" 2>&1
  st=$?
  junit_tally "$xml" "$st"
}
mkdir -p "$work/imp" "$work/good" "$work/none"
printf 'import no_such_module_custos\n\ndef test_x():\n    pass\n' >"$work/imp/test_imp.py"
printf 'def test_x():\n    assert True\n' >"$work/good/test_good.py"
check "pytest: import error" "0 1" "$(pyt imp)"
check "pytest: one passing test" "1 0" "$(pyt good)"
check "pytest: no test collected" "0 1" "$(pyt none)"
check "pytest: no junit file (killed, crashed)" "0 1" "$(junit_tally "$work/never-written.xml" 137)"
printf '<testsuites><testsuite tests="3" failures="0"' >"$work/cut.xml"
check "pytest: truncated junit file" "0 1" "$(junit_tally "$work/cut.xml" 0)"
[ "$n" -eq 15 ] || echo "not ok - the plan says 15 checks, $n ran"
exit $((fails > 0))
