"""The full-scale EntityNet DAG through the shipped Slurm profile, as a dry run (no Slurm binaries needed).

`snakemake -n <targets> --profile slurm` is typed exactly as on a cluster login node (the profile is found as
./slurm/ in the working directory). The test checks that the plan of ~4k jobs is made quickly, that the job counts
per rule follow config/config.yaml (search = n_chunks x backends, download = n_chunks, one train per model), and
that the resources the Slurm executor will turn into sbatch flags come out right: gpu/nodes/runtime/mem from the
model recipe, partitions and CPUs per GPU from the profile's environment variables. The ablation target
`vitb32-alt0` must plan its own train job on the same dataset jobs.
"""

import os
import re
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from lib.common import workflow_config as wc
from workflow_helpers import local_benchmarks_overlay

REPO = Path(__file__).resolve().parents[2]
PY = REPO / ".venv" / "bin" / "python"
PYTHON = str(PY) if PY.exists() else sys.executable
DATASET, MODEL, ABLATION = "entitynet", "vitb32", "vitb32-alt0"
TARGETS = [f"results/{DATASET}/{MODEL}/eval.csv", f"results/{DATASET}/{ABLATION}/eval.csv"]
SITE_ENV = {  # site facts a user exports; the profile must pick them up without being edited
    "ENTITYNET_SLURM_ACCOUNT": "acct-test",
    "ENTITYNET_SLURM_PARTITION": "open",  # a Python builtin name: must stay a string
    "ENTITYNET_SLURM_INTERNET_PARTITION": "net-test",
    "ENTITYNET_SLURM_GPU_PARTITION": "gpu-test",
    "ENTITYNET_SLURM_CPUS_PER_GPU": "10",
}
MAX_DRYRUN_S = float(os.environ.get("ENTITYNET_DRYRUN_MAX_S", "30"))  # slower CI machines may raise it
BLOCK = re.compile(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", re.M)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "ENTITYNET_SLURM_"))}
    env.update(extra)
    return env


def parse_jobs(text: str) -> list[dict]:
    """Job blocks of a dry-run printout: rule, wildcards and resources (values as strings)."""
    jobs = []
    for m in BLOCK.finditer(text):
        fields = {}
        for line in m.group(2).splitlines():
            key, _, val = line.strip().partition(": ")
            fields[key] = val
        res = dict(kv.split("=", 1) for kv in fields.get("resources", "").split(", ") if "=" in kv)
        wc_ = dict(kv.split("=", 1) for kv in fields.get("wildcards", "").split(", ") if "=" in kv)
        jobs.append({"rule": m.group(1), "wildcards": wc_, "resources": res})
    return jobs


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture(scope="module")
def dryrun(tmp_path_factory):
    """One dry run of both targets in a throw-away working dir laid out like the repository."""
    wd = tmp_path_factory.mktemp("dag")
    for name in ("Snakefile", "rules", "scripts", "config", "envs", "docs", "slurm"):
        (wd / name).symlink_to(REPO / name)
    (wd / "resources").mkdir()
    for sub in (REPO / "resources").iterdir():  # bundled inputs only; generated ones would change the plan
        if sub.name not in ("kg", "eval", "cache"):
            (wd / "resources" / sub.name).symlink_to(sub)
    ru0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    overlay = local_benchmarks_overlay(wd)  # ImageNet-1k & co. supplied locally, so the paper suite can be planned
    r = subprocess.run([PYTHON, "-m", "snakemake", "-n", *TARGETS, "--profile", "slurm", "--configfile",
                        str(wd / "config/config.yaml"), str(overlay)], cwd=wd,
                       env=_clean_env(**SITE_ENV), capture_output=True, text=True, timeout=300)
    wall, ru1 = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    print(f"dry run of {len(TARGETS)} targets: {wall:.1f}s wall, {cpu:.1f}s CPU")
    assert r.returncode == 0, f"dry run failed (rc={r.returncode}):\n{r.stderr[-5000:]}"
    text = r.stdout + r.stderr
    return {"wall": wall, "cpu": cpu, "text": text, "jobs": parse_jobs(text)}


def test_dryrun_is_quick(dryrun):
    """Planning the full chain (~4.2k jobs, both targets) costs <= 30 s. Measured as the dry run's CPU time:
    Snakemake plans on one core, so on an idle machine that is its wall time, while the wall time on a shared
    machine mostly measures the neighbours (the same run took 24 s wall at load 1.8, 35 s at load 3.6 and 51 s at
    load 8 with 21.7 s CPU), so the wall time is only printed."""
    assert dryrun["cpu"] <= MAX_DRYRUN_S, f"dry run used {dryrun['cpu']:.1f}s CPU (> {MAX_DRYRUN_S}s)"
    assert "This was a dry-run" in dryrun["text"]


def test_job_counts_follow_config(dryrun, config):
    d = wc.dataset_config(config, DATASET)
    n_search, backends = int(d["search"]["n_chunks"]), sorted(d["search"]["backends"])
    n_download = int(d["download"]["n_chunks"])
    assert n_search > 1 and n_download > 1 and backends, "config no longer describes a full-scale dataset"
    counts = Counter(j["rule"] for j in dryrun["jobs"])
    expected_once = ["kg_dump", "kg_entities", "kg_attributes", "build_queries", "merge_search", "build_shards",
                     "text_candidates"]
    assert counts["search"] == n_search * len(backends), counts
    assert counts["download"] == n_download, counts
    assert counts["train"] == 2 and counts["evaluate"] == 2, counts  # one per model target
    assert counts["prepare_benchmark"] == len(config["evaluation"]["suites"]["paper"]), counts  # shared by both
    for rule in expected_once:
        assert counts[rule] == 1, (rule, counts)
    # the Job stats table agrees with the job blocks
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", dryrun["text"].split("Job stats:")[1], re.M))
    assert int(stats["total"]) == sum(counts.values()) and int(stats["search"]) == counts["search"]
    # every (backend, chunk) pair is planned exactly once
    pairs = {(j["wildcards"]["backend"], j["wildcards"]["chunk"]) for j in dryrun["jobs"] if j["rule"] == "search"}
    assert pairs == {(b, f"{i:05d}") for b in backends for i in range(n_search)}


def test_train_resources(dryrun, config):
    trains = {j["wildcards"]["model"]: j["resources"] for j in dryrun["jobs"] if j["rule"] == "train"}
    assert set(trains) == {MODEL, ABLATION}, trains.keys()  # the ablation is a separate training run
    rec = wc.model_recipe(config, MODEL)
    for model, res in trains.items():
        assert res["gpu"] == str(rec["gpus"]) == "8", res
        assert res["nodes"] == str(rec.get("nodes", 1)), res
        assert res["runtime"] == str(rec["runtime_min"]) and res["mem_mb"] == str(rec["mem_mb"]), res
        assert res["slurm_partition"] == "gpu-test", res  # set-resources from the profile, via the env var
        assert res["cpus_per_gpu"] == "10", res
        assert res["slurm_account"] == "acct-test", res  # default-resources from the profile, via the env var
    assert wc.model_recipe(config, ABLATION)["alt_text_chance"] == 0.0


def test_partitions_per_rule(dryrun):
    seen = {}
    for j in dryrun["jobs"]:
        seen.setdefault(j["rule"], set()).add(j["resources"].get("slurm_partition"))
    for rule in ("kg_dump", "search", "download", "prepare_benchmark"):  # internet=1 rules
        assert seen[rule] == {"net-test"}, (rule, seen[rule])
    for rule in ("train", "evaluate"):
        assert seen[rule] == {"gpu-test"}, (rule, seen[rule])
    for rule in ("kg_entities", "kg_attributes", "build_queries", "merge_search", "build_shards", "text_candidates"):
        assert seen[rule] == {"open"}, (rule, seen[rule])
    internet = {j["rule"] for j in dryrun["jobs"] if j["resources"].get("internet") == "1"}
    assert internet == {"kg_dump", "search", "download", "prepare_benchmark"}, internet
    # every job gets the profile's node default unless it sets its own
    assert all(j["resources"].get("nodes") == "1" for j in dryrun["jobs"]), "a job without nodes=1"


def _parse_profile(env: dict[str, str]) -> dict:
    """The shipped profile as Snakemake's own profile reader turns it into CLI arguments, under `env`."""
    code = ("import json; from snakemake.profiles import ProfileConfigFileParser as P; "
            f"print(json.dumps(P().parse(open({str(REPO / 'slurm' / 'config.v8+.yaml')!r}))))")
    r = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def test_profile_falls_back_to_slurm_defaults_without_env():
    """Nothing exported: empty account/partition (the plugin then guesses the account and Slurm uses its default
    partition), no constraint/extra flags/QoS, and no status command (the plugin's auto-detection picks sacct where
    installed)."""
    got = _parse_profile(_clean_env())
    assert got["executor"] == "slurm"
    assert "slurm-status-command" not in got and "slurm-qos" not in got
    assert {"slurm_account=''", "slurm_partition=''", "nodes=1"} <= set(got["default-resources"])
    assert {"train:slurm_partition=''", "train:cpus_per_gpu=12", "search:slurm_partition=''"} <= set(got["set-resources"])
    assert not [r for r in got["set-resources"] if ":constraint=" in r or ":slurm_extra=" in r]
    assert got["keep-going"] == "False" and got["rerun-incomplete"] == "True" and got["resources"] == ["internet=32"]


def test_profile_reads_standard_sbatch_vars_and_site_options():
    got = _parse_profile(_clean_env(SBATCH_ACCOUNT="proj1", SBATCH_PARTITION="open",
                                    ENTITYNET_SLURM_STATUS_COMMAND="squeue", ENTITYNET_SLURM_JOBS="50",
                                    ENTITYNET_SLURM_QOS="high", ENTITYNET_SLURM_GPU_CONSTRAINT="h100",
                                    ENTITYNET_SLURM_GPU_EXTRA="--exclusive"))
    # quoted, so Snakemake's per-job eval() keeps a partition named "open" a string (not the builtin)
    assert {"slurm_account='proj1'", "slurm_partition='open'"} <= set(got["default-resources"])
    assert {"search:slurm_partition='open'", "train:slurm_partition='open'", "train:constraint='h100'",
            "evaluate:slurm_extra='--exclusive'"} <= set(got["set-resources"])
    assert got["slurm-status-command"] == "squeue" and got["jobs"] == "50" and got["slurm-qos"] == "high"
