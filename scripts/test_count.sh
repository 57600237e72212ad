# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# How scripts/test.sh counts results, in one place so that tests/runner/test_counting.sh can prove
# it on fake test binaries. Sourced; needs PY (a python3) set.
#
# A result is counted from what the test program promised and how it ended, never only from the
# lines it printed: a program that dies half-way prints fewer lines, not failing ones.

# tap_tally STATUS < TAP text: prints "PASSED FAILED NOTE".
#   - "ok N" passes, "not ok N" and "ok N # SKIP" fail (nothing here is optional);
#   - plan lines "1..N" (one per cmocka group) are summed: tests planned but never reported failed;
#     no plan line at all is one failure;
#   - a non-zero exit status with every planned test ok is one more failure (an ASan/LSan report
#     after the last test, a crash in a teardown).
tap_tally() {
  awk -v st="$1" '
    /^[0-9]+\.\.[0-9]+/ { split($1, a, /\.\./); planned += a[2]; plans++; next }
    /^not ok/ { notok++; next }
    /^ok / { if ($0 ~ /# *[Ss][Kk][Ii][Pp]/) skip++; else ok++; next }
    END {
      failed = notok + skip; note = ""
      if (skip) note = note skip " skipped; "
      if (plans == 0) { failed++; note = note "no TAP plan line; " }
      else if (ok + notok + skip < planned) {
        failed += planned - (ok + notok + skip)
        note = note (planned - ok - notok - skip) " planned test(s) never reported; "
      } else if (ok + notok + skip > planned) { failed++; note = note "more results than planned; " }
      if (st != 0 && failed == 0) { failed++; note = note "exit status " st " although every test passed; " }
      else if (st != 0) note = note "exit status " st "; "
      printf "%d %d %s\n", ok, failed, note
    }'
}

# junit_tally XML STATUS: prints "PASSED FAILED NOTE" for a pytest --junitxml file.
#   - failures, errors (collection errors included) and skipped tests fail;
#   - a missing, empty or unparsable file is one failure (pytest crashed, was killed, or never ran);
#   - no test at all is one failure; a non-zero pytest status with no failure counted is one more.
junit_tally() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys
import xml.etree.ElementTree as ET
path, status = sys.argv[1], int(sys.argv[2])
try:
    root = ET.parse(path).getroot()
except (OSError, ET.ParseError) as e:
    print(0, 1, f"no junit result ({type(e).__name__}: {e}), pytest exit status {status};")
    sys.exit(0)
total = bad = 0
for s in root.iter("testsuite"):
    total += int(s.get("tests", 0))
    bad += int(s.get("failures", 0)) + int(s.get("errors", 0)) + int(s.get("skipped", 0))
passed, note = total - bad, ""
if total == 0:
    bad += 1
    note += "no test ran; "
if status != 0 and bad == 0:
    bad += 1
    note += f"pytest exit status {status} although every test passed; "
print(passed, bad, note)
PYEOF
}
