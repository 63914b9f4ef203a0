"""`snakemake <target> --profile <slurm profile>` against a real local Slurm on this machine.

tests/slurm/start_local_slurm.sh installs Debian's munge + slurmctld + slurmd + slurm-client if needed and starts a
loopback-only cluster: two nodes on this host (the host name and "localhost"), partitions "main" (default) and
"net" over both. The test profile is the shipped slurm/config.v8+.yaml with the overrides a cluster without
slurmdbd needs (squeue status queries), faster status polling, and the partitions given through the profile's
environment variables, so the env-driven site overrides are exercised too: kg_dump (internet=1) must land in
"net", the other rules in "main".

Skipped (with the reason) only when not root or without apt/dpkg; a cluster that fails to start is a failure.
Runs the KG chain kg_dump -> kg_entities -> kg_attributes -> build_queries (~1 min), and the multi-node recipe of
slurm/README.md on both nodes: sbatch --nodes=2, srun, scripts/launch_multinode.sh on each node, torchrun
rendezvous and a gloo all-reduce across the nodes (~25 s).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
PY = REPO / ".venv" / "bin" / "python"
PYTHON = str(PY) if PY.exists() else sys.executable
START = REPO / "tests" / "slurm" / "start_local_slurm.sh"
STOP = REPO / "tests" / "slurm" / "stop_local_slurm.sh"
CHAIN = ["kg_dump", "kg_entities", "kg_attributes", "build_queries"]
SNAKEMAKE_TIMEOUT_S = 240
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.?$", re.M)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to install and run a local Slurm (munge/slurmctld/slurmd)"
    have_slurm = all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "squeue", "munged"))
    if not have_slurm and not (shutil.which("apt-get") and shutil.which("dpkg-query")):
        return "Slurm is not installed and apt-get/dpkg are unavailable to install it"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    t0 = time.monotonic()
    try:
        r = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "ENTITYNET_SLURM_NODES": "2"})
    except subprocess.TimeoutExpired:
        pytest.fail(f"{START} did not finish within 600 s")
    if r.returncode != 0:
        pytest.fail(f"{START} failed (rc={r.returncode}):\n{r.stderr[-4000:]}\n{r.stdout[-2000:]}")
    started_here = "already running" not in r.stderr
    print(f"local Slurm ready in {time.monotonic() - t0:.1f}s (started here: {started_here})")
    yield
    if started_here:
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=60)


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's env without Slurm client defaults or site settings that would leak into the test."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "ENTITYNET_SLURM_"))}
    env.update(extra)
    return env


def write_test_profile(dest: Path) -> dict:
    """The shipped profile with local-cluster overrides; returns the written mapping."""
    prof = yaml.safe_load((REPO / "slurm" / "config.v8+.yaml").read_text())
    prof.update({
        "slurm-status-command": "squeue",  # no slurmdbd here: sacct fails silently and snakemake would wait forever
        "slurm-init-seconds-before-status-checks": 1,  # default 40 s per job
        "slurm-keep-successful-logs": True,  # the test reads them
        "latency-wait": 5,  # local filesystem
        "retries": 0,  # a failure must fail the test, fast
    })
    dest.mkdir(parents=True)
    (dest / "config.v8+.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return prof


def _scontrol_job(jobid: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", jobid], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"scontrol show job {jobid}: {out.stderr}"
    fields = {}
    for tok in out.stdout.split():
        k, _, v = tok.partition("=")
        fields.setdefault(k, v)
    return fields


def _cancel_leftovers(workdir: Path, jobids: list[str]) -> None:
    """scancel the jobs of this run: the ids from the log plus any queued job whose workdir is ours."""
    q = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True, timeout=30)
    ids = set(jobids)
    for line in q.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and Path(parts[1]).resolve() == workdir.resolve():
            ids.add(parts[0])
    if ids:
        subprocess.run(["scancel", *sorted(ids)], capture_output=True, timeout=30)


def run_snakemake(workdir: Path, args: list[str], env: dict[str, str], timeout_s: int) -> tuple[int, str]:
    """Run snakemake with a hard timeout; on timeout SIGKILL its process group (SIGTERM would make it wait for
    running jobs) and scancel what it submitted. Returns (rc, combined log)."""
    logf = workdir / "snakemake.out"
    with open(logf, "w") as fh:
        p = subprocess.Popen([PYTHON, "-m", "snakemake", *args], cwd=workdir, env=env, stdout=fh,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            text = logf.read_text()
            _cancel_leftovers(workdir, [m.group(2) for m in SUBMITTED.finditer(text)])
            pytest.fail(f"snakemake did not finish within {timeout_s}s (killed, jobs cancelled); "
                        f"log tail:\n{text[-4000:]}")
    return rc, logf.read_text()


def test_kg_chain_runs_as_slurm_jobs(slurm_cluster, tmp_path):
    wd = tmp_path / "wf"
    (wd / "resources").mkdir(parents=True)
    (wd / "config").symlink_to(REPO / "config")
    (wd / "resources" / "demo").symlink_to(REPO / "resources" / "demo")
    profile = tmp_path / "profile"
    prof = write_test_profile(profile)
    # same keys as the shipped profile, plus only the test overrides
    shipped = yaml.safe_load((REPO / "slurm" / "config.v8+.yaml").read_text())
    assert set(prof) - set(shipped) <= {"slurm-init-seconds-before-status-checks", "slurm-keep-successful-logs",
                                        "slurm-status-command"}
    assert prof["executor"] == "slurm"

    env = _clean_env(ENTITYNET_SLURM_PARTITION="main", ENTITYNET_SLURM_INTERNET_PARTITION="net")
    t0 = time.monotonic()
    rc, log = run_snakemake(
        wd, ["results/demo/queries.parquet", "--profile", str(profile), "--snakefile", str(REPO / "Snakefile"),
             "--directory", str(wd)], env, SNAKEMAKE_TIMEOUT_S)
    wall = time.monotonic() - t0
    print(f"snakemake --profile (4 Slurm jobs): {wall:.1f}s")
    assert rc == 0, f"snakemake exited {rc}; log tail:\n{log[-5000:]}"

    # every rule of the chain was submitted with sbatch, exactly once
    subs = SUBMITTED.findall(log)
    by_rule = {}
    for _, slurm_id, logpath in subs:
        m = re.search(r"/rule_([A-Za-z0-9_]+)/", logpath)
        assert m, f"unexpected Slurm log path {logpath}"
        by_rule.setdefault(m.group(1), []).append((slurm_id, Path(logpath)))
    assert sorted(by_rule) == sorted(CHAIN), f"submitted rules {sorted(by_rule)}; log tail:\n{log[-3000:]}"
    assert all(len(v) == 1 for v in by_rule.values()), by_rule

    # ... and they were real Slurm jobs: completed, exit 0, in the partitions the profile's env vars chose
    for rule, [(slurm_id, logpath)] in by_rule.items():
        job = _scontrol_job(slurm_id)
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", (rule, job)
        assert job["Partition"] == ("net" if rule == "kg_dump" else "main"), (rule, job["Partition"])
        assert Path(job["WorkDir"]).resolve() == wd.resolve(), (rule, job["WorkDir"])
        assert f"rule_{rule}" in job.get("Comment", ""), (rule, job.get("Comment"))
        assert logpath.exists() and logpath.stat().st_size > 0, f"no Slurm log for {rule}: {logpath}"
        text = logpath.read_text()  # the job-side snakemake (jobstep executor) ran the rule inside the job
        assert f"rule {rule}:" in text and "Finished jobid" in text, text[-2000:]

    # the outputs are complete
    import pandas as pd

    q = pd.read_parquet(wd / "results" / "demo" / "queries.parquet")
    assert len(q) > 0 and {"query_id", "text", "kind"} <= set(q.columns), q.columns
    assert q["query_id"].is_unique
    assert len(pd.read_parquet(wd / "results" / "demo" / "entities.parquet")) > 0
    # the bundled demo extract carries no attribute facts: readable with its schema, possibly empty
    assert "query" in pd.read_parquet(wd / "results" / "demo" / "attributes.parquet").columns
    assert (wd / "resources" / "kg" / "demo" / "extract.nt.gz").stat().st_size > 0
    assert wall < 180, f"took {wall:.0f}s"


DDP_PROBE = """
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print(f"PROBE rank={dist.get_rank()} world={dist.get_world_size()} sum={t.item():.0f} "
      f"node={os.environ.get('SLURMD_NODENAME')} master={os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
      flush=True)
dist.destroy_process_group()
"""

# The multi-node recipe of slurm/README.md in a one-rule workflow: `mpi` + `tasks` make the plugin request
# --nodes=2 --ntasks=2 and run the rule in the batch script itself (no `srun -n1` wrapper that would confine it to
# one node); the rule then starts one launcher per node with an explicit srun geometry (the jobstep strips SLURM_*
# from the rule's environment, so srun cannot inherit it).
MULTINODE_SNAKEFILE = """
rule multinode_probe:
    output:
        "ranks.txt",
    resources:
        nodes=2,
        tasks=2,
        tasks_per_gpu=0,
        mpi="srun",
        mem_mb=1000,
        runtime=5,
    shell:
        "{{resources.mpi}} --nodes={{resources.nodes}} --ntasks={{resources.tasks}} --ntasks-per-node=1 "
        "{launcher} 1 {probe} > {{output}}.tmp 2>&1 && mv {{output}}.tmp {{output}}"
"""


def test_multinode_torchrun_through_the_plugin(slurm_cluster, tmp_path):
    """Two Slurm nodes (two slurmd on this host): snakemake -> sbatch --nodes=2 -> srun -> launch_multinode.sh on
    each node -> torchrun static rendezvous -> gloo all-reduce over both nodes."""
    nodes = sorted(set(subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True,
                                      timeout=30).stdout.split()))
    if len(nodes) < 2:
        pytest.skip(f"the running test cluster has one node ({nodes}); start it with ENTITYNET_SLURM_NODES=2")
    wd = tmp_path / "wf"
    wd.mkdir()
    probe = tmp_path / "probe.py"
    probe.write_text(DDP_PROBE)
    (wd / "Snakefile").write_text(MULTINODE_SNAKEFILE.format(
        launcher=REPO / "scripts" / "launch_multinode.sh", probe=probe))
    profile = tmp_path / "profile"
    write_test_profile(profile)
    env = _clean_env(ENTITYNET_SLURM_PARTITION="main", ENTITYNET_PYTHON=PYTHON, OMP_NUM_THREADS="1")
    t0 = time.monotonic()
    rc, log = run_snakemake(wd, ["ranks.txt", "--profile", str(profile)], env, 180)
    print(f"multi-node probe through the plugin: {time.monotonic() - t0:.1f}s")
    assert rc == 0, f"snakemake exited {rc}; log tail:\n{log[-4000:]}\n{(wd / 'ranks.txt.tmp').read_text()[-3000:] if (wd / 'ranks.txt.tmp').exists() else ''}"
    [(_, slurm_id, _)] = SUBMITTED.findall(log)
    job = _scontrol_job(slurm_id)
    assert job["NumNodes"] == "2" and job["JobState"] == "COMPLETED", job

    out = (wd / "ranks.txt").read_text()
    launches = re.findall(r"launch_multinode: \S+: torchrun (.*)$", out, re.M)
    assert len(launches) == 2, out
    args = [dict(zip(a.split()[::2], a.split()[1::2])) for a in launches]
    assert sorted(a["--node-rank"] for a in args) == ["0", "1"], args
    assert {a["--nnodes"] for a in args} == {"2"} and {a["--nproc-per-node"] for a in args} == {"1"}
    assert len({(a["--master-addr"], a["--master-port"]) for a in args}) == 1, args  # every node agrees
    master = f"{args[0]['--master-addr']}:{args[0]['--master-port']}"
    assert args[0]["--master-addr"] == nodes[0], (args, nodes)  # first host of the job's node list
    probes = sorted(line for line in out.splitlines() if line.startswith("PROBE"))
    assert len(probes) == 2, out
    assert {re.search(r"node=(\S+)", p).group(1) for p in probes} == set(nodes), probes  # one rank per node
    for rank, line in enumerate(probes):
        assert line.startswith(f"PROBE rank={rank} world=2 sum=3 ") and line.endswith(f"master={master}"), line
