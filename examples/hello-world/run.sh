#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Custos hello world: a session for print_env.py and its run under cas-run.
#
#   run.sh session [--update] [--password-size N] [--out FILE]
#                                                   create (or update) the session; prints its hash
#                                                   (--out keeps the session file it made)
#   run.sh run                                      run print_env.py through cas-run
#
# Environment: CAS (a CAS name or address the cas CLI knows; default: the CLI's default CAS),
# SCONE_CLI_CONFIG (the owner's CLI configuration), SCONE_LAS_ADDR (this node's LAS socket),
# SESSION (default hello), CUSTOS_BIN (the directory holding cas and cas-run; default: the build
# directory of this checkout, else PATH), SCRIPT (where print_env.py is; default: beside this file).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${CUSTOS_BIN:-}
if [ -z "$bin" ] && [ -x "$here/../../build/cas-run" ]; then bin=$(cd "$here/../../build" && pwd); fi
cas=${bin:+$bin/}cas
cas_run=${bin:+$bin/}cas-run
session=${SESSION:-hello}
script=${SCRIPT:-$here/print_env.py}
cas_args=(); [ -n "${CAS:-}" ] && cas_args=(--cas "$CAS")

usage() { sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//'; }

make_session() {
    local update=0 size=24 keep=
    while [ $# -gt 0 ]; do
        case $1 in
            --update) update=1 ;;
            --password-size) size=$2; shift ;;
            --out) keep=$2; shift ;;
            -h|--help) usage; exit 0 ;;
            *) echo "run.sh session: unknown option $1" >&2; exit 2 ;;
        esac
        shift
    done
    local python pred="" out
    # The measurement CAS will see for python3: what cas-run hashes, nothing else on stdout.
    python=$(SCONE_HASH=1 "$cas_run" -- python3)
    if [ "$update" = 1 ]; then
        pred="predecessor: \"$("$cas" session read "$session" --hash "${cas_args[@]}")\""
    fi
    out=$(mktemp "${TMPDIR:-/tmp}/hello-session.XXXXXX")
    sed -e "s|@SESSION@|$session|" -e "s|@PYTHON@|$python|" -e "s|@SCRIPT@|$script|g" \
        -e "s|@SCRIPT_HASH@|$(sha256sum "$script" | cut -d' ' -f1)|" -e "s|@PREDECESSOR@|$pred|" \
        -e "s|@PASSWORD_SIZE@|$size|" "$here/session.yaml.in" > "$out"
    if [ "$update" = 1 ]; then
        "$cas" session update "$out" "${cas_args[@]}"
    else
        "$cas" session create "$out" "${cas_args[@]}"
    fi
    if [ -n "$keep" ]; then mv "$out" "$keep"; else rm -f "$out"; fi
}

case ${1:-} in
    session) shift; make_session "$@" ;;
    run) shift; exec "$cas_run" "${cas_args[@]}" --session "$session/app" -- python3 "$script" ;;
    -h|--help|"") usage ;;
    *) echo "run.sh: unknown command $1 (session, run)" >&2; exit 2 ;;
esac
