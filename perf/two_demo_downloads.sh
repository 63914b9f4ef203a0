#!/usr/bin/env bash
# Two demo downloads at once (README: serve_local.pin_port false): both must succeed, each on its own free port.
# Prints, per run: exit code, the port its loopback server listened on, and successes / URLs of the chunk.
# Usage (repository root): perf/two_demo_downloads.sh   (runs kg -> search -> download of the demo twice, ~1 min)
set -uo pipefail
repo=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in a b; do
  mkdir -p "$tmp/$run/resources"
  ln -s "$repo/config" "$tmp/$run/config"
  ln -s "$repo/resources/demo" "$tmp/$run/resources/demo"
done
for run in a b; do
  ( cd "$tmp/$run" && "$repo/.venv/bin/python" -m snakemake -s "$repo/Snakefile" --cores 1 \
      results/demo/download/chunk_00000 > snakemake.log 2>&1; echo $? > rc ) &
done
wait
for run in a b; do
  port=$(grep -rhoE "listening on [0-9.:]+" "$tmp/$run/logs/demo/download" 2>/dev/null | head -1)
  counts=$("$repo/.venv/bin/python" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['successes'], '/', d['count'])" \
      "$tmp/$run/results/demo/download/chunk_00000/_summary.json" 2>/dev/null || echo "no summary")
  echo "run $run: rc=$(cat "$tmp/$run/rc") ${port:-no server line} successes: $counts"
done
