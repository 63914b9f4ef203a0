"""`snakemake <target> --profile <slurm profile>` against a real local Slurm on this machine.

tests/slurm/start_local_slurm.sh installs Debian's munge + slurmctld + slurmd + slurm-client if needed and starts a
loopback-only cluster: two nodes on this host (the host name and "localhost"), partitions "main" (default) and
"net" over both. The test profile is the shipped slurm/config.v8+.yaml with the overrides a cluster without
slurmdbd needs (squeue status queries), faster status polling, and the partitions given through the profile's
environment variables, so the env-driven site overrides are exercised too: kg_dump (internet=1) must land in
"net", the other rules in "main".

Skipped (with the reason) only when not root or without apt/dpkg; a cluster that fails to start is a failure.
Runs the KG chain kg_dump -> kg_entities -> kg_attributes -> build_queries (~1 min), and the rehearsal's train rule
on both nodes (~2.5 min): its inputs are built locally first, then the train job is one Slurm job with --nodes=2 whose
srun starts scripts/launch_multinode.sh on each node, and each node's torchrun runs the real
scripts/lib/train/train_openclip.py with the real flags (2 x 2 CPU processes, gloo), as on a GPU cluster.
"""

import json
import math
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


# The rehearsal's training job on two Slurm nodes: datasets.rehearsal.model_overrides.vitb32 (a CPU recipe) gets
# nodes: 2 and two training processes per node. Two per node, not one: with one, SLURM_PROCID equals the global rank
# and SLURM_NTASKS the world size, so a launch in which open_clip took its ranks from Slurm instead of torchrun would
# look the same. With two, only torchrun's RANK / LOCAL_RANK / WORLD_SIZE give global ranks 0-3 and "total 4".
MULTINODE_MODEL = "vitb32"
NODES, PROCS_PER_NODE = 2, 2
WORLD = NODES * PROCS_PER_NODE
REHEARSAL_INPUTS = ["results/rehearsal/shards", "results/rehearsal/text_candidates.parquet"]
DEVICE_LINE = re.compile(r"Device: cpu\.Process \(global: (\d+), local (\d+)\), total (\d+)\.")
LOSS = re.compile(r" Loss: (\S+) ")


def _hostnames(nodelist: str) -> list[str]:
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def _slurmd_logs(nodes: list[str]) -> dict[str, Path]:
    """Each node's slurmd log, from the running cluster's SlurmdLogFile (%n: the node name)."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"^SlurmdLogFile\s*=\s*(\S+)", out, re.M)
    assert m, "no SlurmdLogFile in 'scontrol show config'"
    return {n: Path(m.group(1).replace("%n", n)) for n in nodes}


def test_multinode_training_through_the_plugin(slurm_cluster, tmp_path):
    """The rehearsal's train rule on two Slurm nodes with the real training script and flags: snakemake --profile ->
    sbatch --nodes=2 -> the rule's srun -> scripts/launch_multinode.sh on each node -> torchrun static rendezvous ->
    scripts/lib/train/train_openclip.py (open_clip_train, gloo) in 2 x 2 CPU processes -> checkpoint -> model.safetensors."""
    from lib.common import workflow_config as wc
    from rehearsal import run as rehearsal

    epochs = int(wc.model_recipe(yaml.safe_load((REPO / "config/config.yaml").read_text()), MULTINODE_MODEL,
                                 "rehearsal")["epochs"])
    wd = tmp_path / "wf"
    # 1. the training inputs, locally (no Slurm): the rehearsal's endpoints, KG, search, download, shards, text mix
    t0 = time.monotonic()
    from rehearsal.servers import free_port_base

    r = rehearsal.run(wd, cores=2, targets=REHEARSAL_INPUTS, timeout=900, capture=True, port_base=free_port_base())
    print(f"rehearsal training inputs (local): {time.monotonic() - t0:.1f}s")
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]

    # 2. the train job through the test profile: the runner's config files plus the multi-node overlay
    overlay = tmp_path / "multinode.yaml"
    overlay.write_text(yaml.safe_dump({"datasets": {"rehearsal": {"model_overrides": {
        MULTINODE_MODEL: {"nodes": NODES, "gpus": PROCS_PER_NODE}}}}}))
    profile = tmp_path / "profile"
    write_test_profile(profile)
    target = f"results/rehearsal/{MULTINODE_MODEL}/model.safetensors"
    env = _clean_env(ENTITYNET_SLURM_PARTITION="main", NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1",
                     OMP_NUM_THREADS="1")
    cluster_nodes = sorted(set(subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True,
                                              timeout=30).stdout.split()))
    assert len(cluster_nodes) >= NODES, cluster_nodes
    slurmd_logs = _slurmd_logs(cluster_nodes)
    log_start = {n: p.stat().st_size if p.exists() else 0 for n, p in slurmd_logs.items()}  # read only this run's
    t0 = time.monotonic()
    rc, log = run_snakemake(
        wd, ["-s", str(REPO / "Snakefile"), "--directory", str(wd), "--configfile", str(REPO / "config/config.yaml"),
             str(wd / rehearsal.STATE / "benchmarks.yaml"), str(overlay), "--profile", str(profile), target],
        env, 600)
    print(f"multi-node training through the plugin: {time.monotonic() - t0:.1f}s")
    job_logs = [Path(m.group(3)) for m in SUBMITTED.finditer(log)]
    assert rc == 0, (f"snakemake exited {rc}; log tail:\n{log[-4000:]}\n" + "".join(
        f"--- {p}\n{p.read_text()[-4000:]}" for p in job_logs if p.exists()))

    # 3a. one Slurm job, the train rule's: two nodes, two tasks, no GPU asked for (a CPU recipe), completed
    [(_, slurm_id, slurm_log)] = SUBMITTED.findall(log)  # the inputs were complete: nothing else was submitted
    assert f"/rule_train/rehearsal_{MULTINODE_MODEL}/" in slurm_log, slurm_log
    job = _scontrol_job(slurm_id)
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
    assert job["NumNodes"] == str(NODES) and job["NumTasks"] == str(NODES), job
    assert job["Partition"] == "main" and Path(job["WorkDir"]).resolve() == wd.resolve(), job
    assert "gpu" not in job["TRES"] and not [k for k in job if k.startswith("TresPer")], job
    nodes = _hostnames(job["NodeList"])
    assert len(set(nodes)) == NODES, nodes
    # the rule's srun started one task on each node: both slurmd launched the same step of this job
    steps = {}
    for node in nodes:
        with open(slurmd_logs[node], errors="replace") as fh:
            fh.seek(log_start[node])
            steps[node] = re.findall(rf"launch task StepId={slurm_id}\.(\d+) ", fh.read())
        assert len(steps[node]) == 1, (node, slurmd_logs[node], steps)
    assert len({s[0] for s in steps.values()}) == 1, steps

    # 3b. the launch: lib/train/launch.py's srun line, then one launcher per node with the torchrun rendezvous flags
    train_log = (wd / f"logs/rehearsal/{MULTINODE_MODEL}/train.log").read_text()
    # the launchers' and every rank's console output: in the rule's log when launch.py sends it there, else in the
    # job's stdout/stderr (the Slurm log)
    text = next((t for t in (train_log, Path(slurm_log).read_text()) if "launch_multinode: " in t), "")
    launch = re.search(r"launch: (.*)$", train_log, re.M).group(1).split()
    assert launch[:4] == ["srun", f"--nodes={NODES}", f"--ntasks={NODES}", "--ntasks-per-node=1"], launch
    assert launch[4].endswith("scripts/launch_multinode.sh") and launch[5] == str(PROCS_PER_NODE), launch
    assert launch[6].endswith("scripts/lib/train/train_openclip.py") and launch[7] == "--model", launch
    assert "--logs" in launch and "--device" in launch, launch  # the real flags (torchrun once refused --logs)
    launches = re.findall(r"launch_multinode: \S+: torchrun (.*)$", text, re.M)
    assert len(launches) == NODES, f"{train_log[-3000:]}\n--- {slurm_log}\n{Path(slurm_log).read_text()[-3000:]}"
    args = [dict(zip(a.split()[::2], a.split()[1::2])) for a in launches]
    assert sorted(a["--node-rank"] for a in args) == [str(i) for i in range(NODES)], args
    assert {a["--nnodes"] for a in args} == {str(NODES)}, args
    assert {a["--nproc-per-node"] for a in args} == {str(PROCS_PER_NODE)}, args
    assert len({(a["--master-addr"], a["--master-port"]) for a in args}) == 1, args  # every node agrees
    assert args[0]["--master-addr"] == nodes[0], (args, nodes)  # the first host of the job's node list

    # 3c. open_clip_train in WORLD processes: torchrun's ranks (not Slurm's), gloo, finite losses, two epochs
    ranks = sorted((int(g), int(loc), int(t)) for g, loc, t in DEVICE_LINE.findall(text))
    assert ranks == [(g, g % PROCS_PER_NODE, WORLD) for g in range(WORLD)], ranks
    run_dir = wd / f"results/rehearsal/{MULTINODE_MODEL}/openclip/run"
    out_log = (run_dir / "out.log").read_text()  # open_clip writes it from the global master only
    assert DEVICE_LINE.findall(out_log) == [("0", "0", str(WORLD))], out_log[:3000]
    params = dict(line.split(": ", 1) for line in (run_dir / "params.txt").read_text().splitlines() if ": " in line)
    assert params["world_size"] == str(WORLD) and params["distributed"] == "True", params
    assert params["logs"] == f"results/rehearsal/{MULTINODE_MODEL}/openclip", params["logs"]
    losses = [float(x) for x in LOSS.findall(out_log)]
    assert losses and all(math.isfinite(v) for v in losses), losses
    assert f"Train Epoch: {epochs - 1} " in out_log, out_log[-3000:]

    # 3d. the outputs: the final checkpoint, the exported weights, the summary of a 2-node run
    assert (run_dir / "checkpoints" / f"epoch_{epochs}.pt").exists()
    from safetensors import safe_open

    with safe_open(str(wd / target), "pt") as f:
        assert any(k.startswith("visual.") for k in f.keys())
    summary = json.loads((wd / f"results/rehearsal/{MULTINODE_MODEL}/train_summary.json").read_text())
    assert summary["nodes"] == NODES and summary["gpus"] == PROCS_PER_NODE and summary["epochs"] == epochs, summary
    assert summary["text_sources"]["ranks"] == list(range(WORLD)), summary["text_sources"]
