"""Run the rehearsal: start the local endpoints, then Snakemake on the rehearsal targets with the endpoint overlay.

    python tests/rehearsal/run.py [--workdir DIR] [--cores N] [--overlay YAML ...] [--port-base N] [TARGET ...]
                                  [-- SNAKEMAKE_ARGS ...]

Default targets: ``results/rehearsal/vitb32/eval.csv``, ``results/paper/fig1_rehearsal.png`` and
``results/paper/ablation_rehearsal_vitb32.md``. The working directory defaults to the repository (outputs under
``results/rehearsal``, endpoint state under ``resources/rehearsal``); tests pass a throw-away one. Exits with
Snakemake's exit code.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "scripts")]

import yaml  # noqa: E402

from rehearsal.servers import rehearsal_endpoints  # noqa: E402
from workflow_helpers import make_workdir  # noqa: E402

TARGETS = ["results/rehearsal/vitb32/eval.csv", "results/paper/fig1_rehearsal.png",
           "results/paper/ablation_rehearsal_vitb32.md"]
STATE = "resources/rehearsal"  # endpoint state and benchmark sources, below the working directory


def snakemake_cmd(workdir: Path, overlays: list[Path], cores: int, targets: list[str], extra: list[str]) -> list[str]:
    """The Snakemake command line: the repository's workflow and config, plus the overlays (deep-merged in order)."""
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(REPO / "config/config.yaml"), *map(str, overlays), "--cores", str(cores),
            *extra, *targets]


def run(workdir: Path, cores: int = 2, targets: list[str] | None = None, extra: list[str] | None = None,
        timeout: float | None = None, capture: bool = False, overlays: list[Path] | None = None,
        unlock: bool = False, port_base: int | None = None) -> subprocess.CompletedProcess:
    """Start the endpoints (on the config's ports, or ``port_base`` + 0..2), run Snakemake (``unlock``: ``--unlock``
    first, after a killed run), stop the endpoints."""
    workdir = Path(workdir).resolve()
    if workdir != REPO:
        make_workdir(workdir)  # the config and bundled resources the workflow reads relative to its directory
    state = workdir / STATE
    shutil.rmtree(state / "oxigraph", ignore_errors=True)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    with rehearsal_endpoints(workdir, STATE, config, port_base) as (overlay, env):
        overlay_path = state / "benchmarks.yaml"
        overlay_path.write_text(yaml.safe_dump(overlay, sort_keys=True))
        files = [overlay_path, *(overlays or [])]
        # online, but the Hub is the stand-in (HF_ENDPOINT in env): prepare_benchmark fetches the Hub benchmarks
        # from it; training and evaluation set HF_HUB_OFFLINE themselves
        full_env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="0", **env)
        kw = dict(env=full_env, cwd=workdir, timeout=timeout, capture_output=capture, text=True)
        if unlock:
            subprocess.run(snakemake_cmd(workdir, files, cores, [], ["--unlock"]), **kw)
        cmd = snakemake_cmd(workdir, files, cores, targets or TARGETS, extra or [])
        print("rehearsal:", " ".join(cmd), flush=True)
        return subprocess.run(cmd, **kw)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=REPO)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--overlay", type=Path, action="append", default=[], help="another config overlay (YAML)")
    ap.add_argument("--port-base", type=int, default=None,
                    help="serve the endpoints on N .. N+3 instead of the config's ports (a second rehearsal)")
    ap.add_argument("targets", nargs="*")
    cut = argv.index("--") if "--" in argv else len(argv)  # after "--": Snakemake's own flags
    args = ap.parse_args(argv[:cut])
    return run(args.workdir, args.cores, args.targets, argv[cut + 1:], overlays=args.overlay,
               port_base=args.port_base).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
