#!/usr/bin/env bash
# clang-format with the project's .clang-format.
#   scripts/format.sh --check [FILE...]  lists the C files (default: every tracked *.c and *.h) that
#                                        clang-format would change, with the number of changed lines,
#                                        and exits 1 when there is any; changes nothing.
#   scripts/format.sh FILE...            formats the given files in place (never the whole tree
#                                        implicitly: name the files you are editing).
# CLANG_FORMAT selects the binary (default clang-format-14, else clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-}
if [ -z "$cf" ]; then
  if command -v clang-format-14 >/dev/null; then cf=clang-format-14
  elif command -v clang-format >/dev/null; then cf=clang-format
  else echo "format.sh: clang-format not found (scripts/install-deps.sh installs it)" >&2; exit 2
  fi
fi
check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
if [ $# -gt 0 ]; then
  files=("$@")
elif [ $check = 1 ]; then
  mapfile -t files < <(git ls-files '*.c' '*.h')
else
  echo "usage: $0 --check [FILE...] | $0 FILE..." >&2
  exit 2
fi
if [ $check = 0 ]; then
  exec "$cf" -i --style=file "${files[@]}"
fi
bad=0
lines=0
for f in "${files[@]}"; do
  n=$("$cf" --style=file "$f" | diff -- "$f" - | grep -c '^[<>]' || true)
  if [ "$n" -gt 0 ]; then
    echo "$f: $n lines would change"
    bad=$((bad + 1))
    lines=$((lines + n))
  fi
done
if [ $bad -gt 0 ]; then
  echo "$bad of ${#files[@]} files not formatted ($lines changed lines, counting removed and added); see the" \
       "changes with: $cf --style=file FILE | diff FILE -" >&2
  exit 1
fi
echo "${#files[@]} files formatted"
