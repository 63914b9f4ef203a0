"""Console lines of the demo's default target: the quiet default against the verbose console, and optionally against
an older commit (the console before it was made quiet).

    .venv/bin/python perf/console_lines.py                      # quiet and verbose, this checkout (two demo runs)
    .venv/bin/python perf/console_lines.py --before-rev 84a2cba # also the default console of that commit

Each run is the real CLI (``snakemake --cores 2``) in a fresh working directory, stdout and stderr together, as a
user sees them. Prints one row per run: lines, characters, seconds, and the last line printed.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINKED = ["config", "resources/demo", "resources/paper"]


def workdir(repo: Path, tmp: Path) -> Path:
    tmp.mkdir(parents=True)
    for rel in LINKED:
        dst = tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(repo / rel)
    return tmp


def run(repo: Path, wd: Path, *extra: str) -> tuple[str, float, int]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(wd), "--cores", "2",
           *extra]
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1")
    env.pop("ENTITYNET_CONSOLE", None)
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    return p.stdout + p.stderr, time.time() - t0, p.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before-rev", help="a commit whose default console to count too (git archive of it)")
    ap.add_argument("--keep", help="folder to keep the console outputs in")
    args = ap.parse_args()
    runs = [("quiet (default)", REPO, ()), ("verbose (--config console=verbose)", REPO, ("--config", "console=verbose"))]
    with tempfile.TemporaryDirectory(prefix="console_lines_") as tmpd:
        tmp = Path(tmpd)
        if args.before_rev:
            old = tmp / "before_repo"
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before_rev], capture_output=True,
                                     check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            runs.insert(0, (f"before ({args.before_rev}, default)", old, ()))
        print(f"{'console':40s} {'lines':>6s} {'chars':>8s} {'seconds':>8s} rc  last line")
        for i, (name, repo, extra) in enumerate(runs):
            out, secs, rc = run(repo, workdir(repo, tmp / f"wd{i}"), *extra)
            lines = out.splitlines()
            last = next((ln for ln in reversed(lines) if ln.strip()), "")
            print(f"{name:40s} {len(lines):6d} {len(out):8d} {secs:8.0f} {rc:2d}  {last[:70]}", flush=True)
            if args.keep:
                Path(args.keep).mkdir(parents=True, exist_ok=True)
                (Path(args.keep) / f"console_{i}.txt").write_text(out)


if __name__ == "__main__":
    main()
