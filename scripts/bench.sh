#!/usr/bin/env bash
# Print every benchmark's figures beside its peers (`make bench`). Heavy: about 30-40 minutes on
# 2 cores. Run one part with `bash scripts/bench.sh geocode|cpmp|certificate|peers|rebalance|maps|api`.
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
        # plan, bound, LP relaxation and the HiGHS optimum per district of the sample roster (minutes)
        certificate) $PY -m benchmarks.certificate --points true
                     $PY -m benchmarks.certificate --points geocoded ;;
        # spopt (CBC) builds an n x n model: it runs on the instances up to 100 points, capped at 300 s each
        peers)     $PY -m benchmarks.peers "$CPMP"/pmedcap1/cpmp0{1,5}.txt "$CPMP"/pmedcap1/cpmp11.txt "$CPMP"/sjc/SJC1.dat \
                       "$CPMP"/cccp/TA{25,50,100}.dat "$CPMP"/cccp/doni1.dat --time-limit 10 --roster ;;
        rebalance) $PY -m benchmarks.rebalance ;;
        maps)      bash scripts/install-browser.sh >&2 && $PY -m benchmarks.maps ;;
        api)       $PY -m benchmarks.api ;;
        *)         echo "unknown part: $part" >&2; exit 2 ;;
    esac
done
