"""Shared pytest fixtures. `scripts/` is importable as top-level modules (PyPSA-Eur pattern)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
TESTS = REPO / "tests"
for _p in (SCRIPTS, TESTS):  # scripts/ as top-level modules; tests/ for shared helpers (loopback, workflow_helpers)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
