#!/usr/bin/env bash
# Runs the test suite; "no tests collected" (pytest exit 5) is a failure, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
python -m pytest "$@"
rc=$?
if [ "$rc" = 5 ]; then
    echo "ERROR: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
