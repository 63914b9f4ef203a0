"""The rehearsal, executed: ``results/rehearsal/vitb32/eval.csv``, ``results/paper/fig1_rehearsal.png`` and
``results/paper/ablation_rehearsal_vitb32.md`` from a fresh working directory, through the flagship's rules against
the local endpoints (``tests/rehearsal``): HTTP SPARQL to oxigraph, SerpAPI Google + Bing (stand-in), img2dataset from
a loopback host, several search and download chunks, two training processes under torchrun (gloo) on the hybrid
data path with the text mix, the paper's 12 benchmarks (prepared by rule prepare_benchmark from fixtures served as a
Hugging Face Hub stand-in, distributed archives and local folders), Fig. 1 and the ablation.

What it cannot show: the real endpoints' answers, GPU speed, NCCL. See README, "Rehearsal".
"""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import REPO
from rehearsal import retrain as rt
from rehearsal import run as rehearsal
from rehearsal.servers import free_port_base

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())
PAPER_SUITE = CONFIG["evaluation"]["suites"]["paper"]
MODELS = ["vitb32", "vitb32-alt0", "vitb32-alt100", "vitb16"]  # the ablation's three + Fig. 1's second model


PORT_BASE = free_port_base()


@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory):
    wd = tmp_path_factory.mktemp("rehearsal")
    t0 = time.monotonic()
    r = rehearsal.run(wd, cores=2, timeout=1800, capture=True, port_base=PORT_BASE)
    print(f"rehearsal: {time.monotonic() - t0:.0f} s")
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    return wd


def out_log(wd, model):
    return (wd / f"results/rehearsal/{model}/openclip/run/out.log").read_text()


@pytest.mark.parametrize("model", MODELS)
def test_two_training_processes_and_finite_losses(rehearsed, model):
    log = out_log(rehearsed, model)  # open_clip's own log: rank 0 writes it
    train_log = (rehearsed / f"logs/rehearsal/{model}/train.log").read_text()  # the rule log: every rank's output
    for rank in (0, 1):
        assert re.search(rf"Device: cpu\.Process \(global: {rank}, local {rank}\), total 2\.", train_log), \
            train_log[:3000]
    losses = [float(x) for x in re.findall(r" Loss: ([-+0-9.naif]+) ", log)]
    assert losses and all(math.isfinite(v) for v in losses), losses
    assert (rehearsed / f"results/rehearsal/{model}/openclip/run/checkpoints/epoch_2.pt").exists()
    summary = json.loads((rehearsed / f"results/rehearsal/{model}/train_summary.json").read_text())
    assert summary["epochs"] == 2 and summary["gpus"] == 2
    launch = re.search(r"launch: (.*)$", train_log, re.M).group(1).split()
    i = launch.index("torch.distributed.run")
    assert launch[i + 1:i + 3] == ["--standalone", "--nproc-per-node=2"]
    assert launch[i + 3].endswith("train_openclip.py") and launch[i + 4] == "--"
    assert launch[launch.index("--entitynet-data-path") + 1] == "hybrid"


def test_every_paper_benchmark_is_evaluated(rehearsed):
    for model in MODELS:
        df = pd.read_csv(rehearsed / f"results/rehearsal/{model}/eval.csv")
        assert list(dict.fromkeys(df["benchmark"])) == PAPER_SUITE, df
        assert (df["status"] == "ok").all(), df[df["status"] != "ok"]
        assert df["value"].between(0, 1).all()
        inat = df[(df["benchmark"] == "rare_species") & (df["metric"] == "acc1")]
        assert int(inat["n_variants"].iloc[0]) == 10  # five class-name styles x two template sets


def test_benchmarks_prepared_by_rule(rehearsed):
    """Every paper benchmark's root was built by prepare_benchmark from its configured kind of source, counts checked."""
    for name in PAPER_SUITE:
        m = json.loads((rehearsed / f"data/benchmarks/{name}/manifest.json").read_text())
        src = CONFIG["benchmarks"][name]["source"]
        assert m["source"]["type"] == src["type"], (name, m["source"])
        if src["type"] == "hf_hub":
            assert m["source"]["repo"] == src["repo"] and len(m["source"]["commit"]) == 40
        assert (rehearsed / f"logs/benchmarks/{name}.log").exists()


def test_paper_outputs(rehearsed):
    png = rehearsed / "results/paper/fig1_rehearsal.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = pd.read_csv(rehearsed / "results/paper/fig1_rehearsal_points.csv")
    assert {"vitb32", "vitb16"} <= set(points.astype(str).stack()), points
    md = (rehearsed / "results/paper/ablation_rehearsal_vitb32.md").read_text()
    assert "0% alt text" in md and "50% alt text" in md and "100% alt text" in md


def test_search_and_download_ran_in_chunks(rehearsed):
    hits = sorted((rehearsed / "results/rehearsal/search").glob("*/chunk_*.parquet"))
    assert {p.parent.name for p in hits} == {"serpapi_google", "serpapi_bing"} and len(hits) == 6
    assert len(list((rehearsed / "results/rehearsal/download").glob("chunk_*"))) == 2
    status = pd.read_parquet(rehearsed / "results/rehearsal/download_status.parquet")
    assert status.loc[status["status"] == "success", "count"].sum() > 40, status
    counts = json.loads((rehearsed / "results/rehearsal/dedup/counts.json").read_text())
    assert counts["n_kept"] > 0


def test_rerun_is_a_noop(rehearsed):
    r = rehearsal.run(rehearsed, cores=2, extra=["-n"], timeout=600, capture=True, port_base=PORT_BASE)
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]


def training_processes(workdir, model) -> list[int]:
    """Live (not zombie) processes training ``model`` in ``workdir`` (their command line names its log dir)."""
    pids = []
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            cmd = open(f"/proc/{proc}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            state = open(f"/proc/{proc}/stat").read().split(") ", 1)[1][:1]
            cwd = os.readlink(f"/proc/{proc}/cwd")
        except OSError:
            continue
        if f"results/rehearsal/{model}/openclip" in cmd and "train_openclip" in cmd and state != "Z" \
                and os.path.realpath(cwd) == os.path.realpath(workdir):
            pids.append(int(proc))
    return pids


def test_killed_training_resumes_under_torchrun(rehearsed, tmp_path):
    """kill -9 the whole two-process training after its first checkpoint; the rerun resumes from it under torchrun.

    A fresh ablation model (vitb32-alt25) with 8 epochs of 96 samples (an overlay of this test): seven epochs, about
    40 steps, are left when epoch 1's checkpoint appears, and the kill needs to land before the last one."""
    model = "vitb32-alt25"
    overlay = tmp_path / "epochs.yaml"
    overlay.write_text(yaml.safe_dump({"datasets": {"rehearsal": {"model_overrides": {
        "vitb32": {"epochs": 8, "samples_seen": 8 * 96}}}}}))
    run_dir = rehearsed / f"results/rehearsal/{model}/openclip/run"
    target = f"results/rehearsal/{model}/model.safetensors"
    proc = subprocess.Popen([sys.executable, str(REPO / "tests/rehearsal/run.py"), "--workdir", str(rehearsed),
                             "--overlay", str(overlay), "--port-base", str(PORT_BASE), target],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = run_dir / "checkpoints/epoch_1.pt"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and not first.exists() and proc.poll() is None:
        time.sleep(0.2)
    assert first.exists(), "no first checkpoint before the deadline"
    os.killpg(proc.pid, signal.SIGKILL)  # runner, endpoints, snakemake and torchrun (its workers: own sessions)
    proc.wait(timeout=30)
    # torchrun's workers run in sessions of their own; they end themselves when their launcher is gone
    # (train_openclip.exit_with_launcher): none may train on into the run directory while the rerun resumes from it
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and training_processes(rehearsed, model):
        time.sleep(0.5)
    assert not training_processes(rehearsed, model), "training processes outlived their killed launcher"
    assert not (rehearsed / target).exists()
    mtime = first.stat().st_mtime
    r = rehearsal.run(rehearsed, cores=2, targets=[target], overlays=[overlay], timeout=900, capture=True,
                      extra=["--rerun-incomplete"], unlock=True, port_base=PORT_BASE)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    log = (run_dir / "out.log").read_text()
    resumed = re.findall(r"=> resuming checkpoint '[^']+' \(epoch (\d+)\)", log)
    assert len(resumed) == 1 and 1 <= int(resumed[0]) < 8, log[-3000:]  # from a checkpoint, not from scratch
    assert first.stat().st_mtime == mtime  # epoch 1 was not trained again
    assert json.loads((rehearsed / f"results/rehearsal/{model}/train_summary.json").read_text())["epochs"] == 8


def test_text_sources_drawn_follow_the_ablation(rehearsed):
    """Both training processes report the text sources they drew; the alt-text share is exactly 0 and 1 at the ends
    of the ablation and binomial at 0.5. 96 draws per model (2 epochs x 48): at p = 0.5 the count lies in [25, 71]
    (mean 48, sd 4.9; outside with probability 2.6e-6 per run)."""
    shares = {}
    for model in ("vitb32-alt0", "vitb32", "vitb32-alt100"):
        ts = json.loads((rehearsed / f"results/rehearsal/{model}/train_summary.json").read_text())["text_sources"]
        assert ts["ranks"] == [0, 1] and ts["draws"] == 96, ts
        shares[model] = ts["total"].get("alt", 0)
        assert sum(ts["total"].values()) == 96
    assert shares["vitb32-alt0"] == 0 and shares["vitb32-alt100"] == 96
    assert 25 <= shares["vitb32"] <= 71, shares


# Last in this module on purpose: it rewrites vitb32's outputs, so the outputs made from them (Fig. 1, the ablation)
# are older than their inputs afterwards, and test_rerun_is_a_noop, run after it, would see them as outdated.
def test_retraining_gives_the_same_bytes(rehearsed):
    """The two-process CPU training (torchrun, gloo) is a function of seed, data and recipe: vitb32's training and
    evaluation, rerun in the same workdir on the same ports from scratch (its open_clip run directory deleted, so
    nothing resumes), give byte-identical checkpoints, weights, text-source counts and eval.csv (exemptions:
    tests/rehearsal/retrain.py). Fails for an unseeded shuffle (tried: upstream's sample shuffle, seeded from pid and
    time, put back in the wrapper changed 28 of the 75 files, weights and eval.csv among them) and for any other
    seed or draw that follows the clock or the pid."""
    res = rt.retrain(rehearsed, "vitb32", PORT_BASE, timeout=1200)
    print(f"retrain + evaluate vitb32: {res['seconds']:.0f} s")
    assert res["returncode"] == 0, res["output"][-4000:]
    assert len(res["before"]) > 20 and "model.safetensors" in res["after"]
    assert not res["differ"], f"differ after retraining: {res['differ']}"
