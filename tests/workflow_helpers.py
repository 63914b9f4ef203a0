"""Run the real Snakemake CLI on the repo's workflow in a throw-away working directory."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What the workflow reads relative to its working directory (configfile, bundled resources).
LINKED = ["config", "resources/demo", "resources/paper"]


def make_workdir(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    for rel in LINKED:
        dst = tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to(REPO / rel)
    return tmp


def snakemake(workdir: Path, *args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    full_env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1", **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run."""
    counts: dict[str, int] = {}
    lines = dry_run_output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("Job stats"))
    except StopIteration:
        return counts
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


LOCAL_BENCHMARKS = ("imagenet1k",)  # source.type local in config/config.yaml


def local_benchmarks_overlay(workdir: Path) -> Path:
    """A config overlay giving the locally supplied benchmarks (ImageNet-1k) a
    ``source.local_path`` (empty folders under the working directory), so that the paper suite can be planned: without
    it the plan stops naming the missing keys. Returns the overlay's path."""
    lines = ["benchmarks:"]
    for name in LOCAL_BENCHMARKS:
        folder = workdir / "supplied" / name
        folder.mkdir(parents=True, exist_ok=True)
        lines.append(f"  {name}: {{source: {{type: local, local_path: {str(folder)!r}}}}}")
    path = workdir / "local_benchmarks.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def with_local_benchmarks(workdir: Path) -> list[str]:
    """``--configfile`` arguments: the repository config plus :func:`local_benchmarks_overlay` (put targets first)."""
    return ["--configfile", str(workdir / "config/config.yaml"), str(local_benchmarks_overlay(workdir))]


def in_loaded_workflow(body: str, configfiles: tuple[str, ...] = ()) -> object:
    """Run ``body`` (Python lines, one space indented, printing one JSON line) inside
    ``_helpers.loaded_workflow(configfiles)`` as ``w``, in a fresh interpreter (the Snakemake workflow object is
    process-global); returns the parsed JSON."""
    code = ("import json, sys, types; from pathlib import Path; sys.path.insert(0, 'scripts'); import _helpers\n"
            f"with _helpers.loaded_workflow({tuple(configfiles)!r}) as w:\n" + body)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])
