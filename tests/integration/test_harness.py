# SPDX-License-Identifier: Apache-2.0
"""The harness judges how our daemons end: a stop that does not exit 0 (unless the test said so), or
a log with an AddressSanitizer, LeakSanitizer or UBSan report, fails the test and names the log.
Proven on fake daemons (small Python programs) that end each way."""
import os
import sys

import pytest

from harness import SANITIZER_MARKERS, Daemon, check_sanitizers, run

LEAK = "==4242==ERROR: LeakSanitizer: detected memory leaks\\nDirect leak of 77 byte(s) in 1 object(s)"
UAF = "==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010"
UBSAN = "lib/json.c:12:5: runtime error: signed integer overflow: 2147483647 + 1"

FAKE = """
import signal, sys, time
def term(*_):
    sys.stderr.write({report!r} + "\\n")
    sys.stderr.flush()
    sys.exit({status})
signal.signal(signal.SIGTERM, term)
sys.stderr.write({early!r} + "ready\\n")
sys.stderr.flush()
{after_ready}
while True:
    time.sleep(0.05)
"""


class Fake(Daemon):
    ready_marker = "ready"

    def __init__(self, tmp_path, name, status=0, report="", early="", after_ready=""):
        self.log_path = str(tmp_path / f"{name}.log")
        self.label = f"fake {name}"
        self.proc = None
        self.script = FAKE.format(report=report, status=status, early=early, after_ready=after_ready)

    def args(self):
        return [sys.executable, "-c", self.script]


def failure(fn):
    with pytest.raises(pytest.fail.Exception) as e:
        fn()
    return str(e.value)


def test_clean_stop_passes(tmp_path):
    d = Fake(tmp_path, "clean").start()
    d.stop()
    assert d.proc is None


@pytest.mark.parametrize("report", [LEAK, UAF, UBSAN], ids=["lsan", "asan", "ubsan"])
def test_sanitizer_report_at_stop_fails_naming_the_log(tmp_path, report):
    d = Fake(tmp_path, "reporting", report=report).start()
    msg = failure(d.stop)
    assert d.log_path in msg and any(m in msg for m in SANITIZER_MARKERS), msg


def test_nonzero_exit_at_stop_fails(tmp_path):
    d = Fake(tmp_path, "exit1", status=1).start()
    msg = failure(d.stop)
    assert "exited with status 1, expected 0" in msg and d.log_path in msg, msg


def test_nonzero_exit_expected_explicitly_passes(tmp_path):
    d = Fake(tmp_path, "exit1-expected", status=1).start()
    d.stop_status = 1
    d.stop()
    # ... but only that status
    d = Fake(tmp_path, "exit2", status=2).start()
    d.stop_status = 1
    assert "exited with status 2, expected 1" in failure(d.stop)


def test_daemon_that_died_by_itself_fails_at_stop(tmp_path):
    d = Fake(tmp_path, "died", after_ready="time.sleep(0.2); sys.exit(3)").start()
    d.proc.wait(timeout=10)
    assert "exited with status 3" in failure(d.stop)


def test_kill_on_purpose_still_reads_the_log(tmp_path):
    d = Fake(tmp_path, "killed-clean").start()
    d.kill()
    d = Fake(tmp_path, "killed-reported", early=UAF + "\n").start()
    assert "AddressSanitizer" in failure(d.kill)


def test_refusal_with_a_report_fails(tmp_path):
    """start(expect_fail=True) returns the status of a refusal, but not past a sanitizer report."""
    d = Fake(tmp_path, "refuses", after_ready="sys.exit(1)")
    d.ready_marker = "never printed"
    assert d.start(expect_fail=True) == 1
    d = Fake(tmp_path, "refuses-leaking", early=LEAK + "\n", after_ready="sys.exit(1)")
    d.ready_marker = "never printed"
    assert "LeakSanitizer" in failure(lambda: d.start(expect_fail=True))


def test_short_lived_programs_are_checked(tmp_path):
    r = run([sys.executable, "-c", "import sys; sys.stderr.write('ok\\n')"])
    assert r.returncode == 0
    msg = failure(lambda: run([sys.executable, "-c", f"import sys; sys.stderr.write({UBSAN!r})"]))
    assert "runtime error" in msg
    assert check_sanitizers("no report here\n", "x") is None
    assert os.path.basename(sys.executable) in msg
