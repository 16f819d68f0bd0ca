#!/usr/bin/env bash
# Print every benchmark's figures beside its peers (`make bench`). Heavy: about 30-40 minutes on
# 2 cores. Run one part with `bash scripts/bench.sh geocode|cpmp|peers|rebalance|maps|api`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
CPMP=../shared/benchmarks/cpmp
parts=("${@:-geocode cpmp peers rebalance maps api}")
for part in ${parts[*]}; do
    echo "=== $part"
    case "$part" in
        geocode)   $PY -m benchmarks.geocode ;;
        cpmp)      $PY -m benchmarks.cpmp "$CPMP"/pmedcap1/*.txt "$CPMP"/sjc/*.dat --time-limit 10
                   $PY -m benchmarks.cpmp "$CPMP"/stefanello2015/*.txt --time-limit 60
                   $PY -m benchmarks.cpmp "$CPMP"/cccp/doni*.dat --time-limit 60
                   $PY -m benchmarks.cpmp --roster --time-limit 5 ;;
        peers)     $PY -m benchmarks.peers "$CPMP"/pmedcap1/*.txt "$CPMP"/sjc/*.dat "$CPMP"/stefanello2015/*.txt --roster ;;
        rebalance) $PY -m benchmarks.rebalance ;;
        maps)      bash scripts/install-browser.sh >&2 && $PY -m benchmarks.maps ;;
        api)       $PY -m benchmarks.api ;;
        *)         echo "unknown part: $part" >&2; exit 2 ;;
    esac
done
