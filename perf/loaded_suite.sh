#!/usr/bin/env bash
# The test suite under load: N times, a fresh clone of HEAD runs .ci/run (fresh venv, then `make test`) while
# stress-ng keeps one CPU busy beside it. Proves the suite does not depend on how loaded the machine is.
# One result line per run (markdown table row) goes to stdout and to perf/loaded_suite.log of the calling tree.
#   usage: perf/loaded_suite.sh [RUNS=3] [STRESS_CPUS=1]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; cpus=${2:-1}
command -v stress-ng >/dev/null || { echo "stress-ng missing (Debian: apt-get install stress-ng)" >&2; exit 2; }
commit=$(git rev-parse --short HEAD)
log=$PWD/perf/loaded_suite.log
for i in $(seq 1 "$runs"); do
  dir=$(mktemp -d /tmp/loaded-suite.XXXXXX)
  git clone -q "$PWD" "$dir/repo"
  stress-ng --cpu "$cpus" --cpu-method matrixprod --timeout 90m --quiet &
  stress=$!
  t0=$(date +%s)
  (cd "$dir/repo" && CI=true bash .ci/run) >"$dir/ci.log" 2>&1
  rc=$?
  kill "$stress" 2>/dev/null; wait "$stress" 2>/dev/null
  summary=$(grep -E "^[0-9]+ (passed|failed)|^=+ .*(passed|failed).* =+$" "$dir/ci.log" | tail -n 1 | tr -d '=')
  line="| $(date -u +%F) | $commit | $i/$runs | stress-ng --cpu $cpus | rc $rc | ${summary:-no summary} | $(( ($(date +%s) - t0) / 60 )) min |"
  echo "$line" | tee -a "$log"
  [ "$rc" = 0 ] && rm -rf "$dir" || echo "kept $dir (ci.log) for the failure" | tee -a "$log"
done
