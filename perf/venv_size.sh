#!/usr/bin/env bash
# Size of the pip venv that `make venv` builds, and its largest packages (README, "Quickstart").
# Usage: perf/venv_size.sh [VENV]   (default .venv; a symlinked venv is followed)
set -euo pipefail
venv="${1:-.venv}"
echo "total: $(du -sh "$venv/" | cut -f1)"
du -s "$venv"/lib/python3*/site-packages/* 2>/dev/null | sort -rn | head -"${TOP:-10}" |
  awk '{n = split($2, p, "/"); printf "%6.0f MB  %s\n", $1 / 1024, p[n]}'
