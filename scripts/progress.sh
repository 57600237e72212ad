# SPDX-License-Identifier: Apache-2.0
# One progress line per step, the step's own output in a log file (sourced by scripts that install,
# build or run long steps: kube-build.sh, images.sh, demo.sh).
# Set PROGRESS_NAME (the line's prefix) and LOG (the log file) before calling
#   step "description" command args...
# which prints "NAME: description ... done (N s)", or "FAILED (exit N)" with the log's last 30 lines
# on stderr, then exits 1. The command runs with errexit (inside its functions too) and stdin from
# /dev/null; its stdout and stderr are appended to $LOG.
step() {
  local what=$1 t0 st
  shift
  t0=$(date +%s)
  printf '%s: %s ... ' "$PROGRESS_NAME" "$what"
  echo "=== $what: $*" >>"$LOG"
  set +e
  (set -e; "$@") </dev/null >>"$LOG" 2>&1
  st=$?
  set -e
  if [ $st -ne 0 ]; then
    echo "FAILED (exit $st)"
    echo "$PROGRESS_NAME: last lines of the log $LOG:" >&2
    tail -n 30 "$LOG" >&2
    echo "$PROGRESS_NAME: full log: $LOG" >&2
    exit 1
  fi
  echo "done ($(($(date +%s) - t0)) s)"
}
