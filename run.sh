#!/usr/bin/env bash
# magtwin's two entry points (see README):
#   ./run.sh pipeline [snakemake options]   the whole pipeline on the bundled synthetic sample
#   ./run.sh test [pytest options]          the test suite
# Each first installs what is missing (idempotent; system packages when run as root).
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=tools/setup.sh
source tools/setup.sh
magtwin_setup

cmd="${1:-}"; shift || true
case "$cmd" in
    pipeline)
        snakemake --profile profiles/local "$@"
        report="$(pwd)/results/report.html"
        snakemake --profile profiles/local --report "$report" "$@" >/dev/null 2>&1 \
            || snakemake --profile profiles/local --report "$report" "$@"
        echo "magtwin: pipeline done. Report: $report"
        ;;
    test)
        exec tools/run-tests.sh "$@"
        ;;
    *)
        echo "usage: ./run.sh pipeline [snakemake options] | ./run.sh test [pytest options]" >&2
        exit 2
        ;;
esac
