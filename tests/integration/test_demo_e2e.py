"""The embedded demo, end to end, through the real CLI: the default target in a fresh working directory.

Runs once in the suite (minutes on 2 cores; the ``demo`` fixture, tests/integration/conftest.py); asserts every
artifact's schema and non-empty content.
"""
import json
import sys
import tarfile
import time

import pandas as pd
import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from workflow_helpers import snakemake  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_kg_artifacts(demo):
    prov = json.loads((demo / "resources/kg/demo/provenance.json").read_text())
    assert prov["endpoint"].startswith("file:") and prov["triples"] > 1000 and prov["queries"]
    ents = pd.read_parquet(demo / "results/demo/entities.parquet")
    for col in ("qid", "label", "description", "aliases", "common_names", "taxon_names", "sitelinks", "roots",
                "is_living", "natural_type_qid", "natural_type_label", "image", "source"):
        assert col in ents.columns, col
    assert len(ents) > 100 and ents["qid"].is_unique and ents["is_living"].any() and (~ents["is_living"]).any()
    attrs = pd.read_parquet(demo / "results/demo/attributes.parquet")
    assert list(attrs.columns) == ["qid", "category", "attribute", "query", "source"]


def test_queries_search_urls(demo):
    q = pd.read_parquet(demo / "results/demo/queries.parquet")
    assert q["query_id"].is_unique and {"wd-noun-world", "wd-noun-living"} <= set(q["kind"])
    # the bundled records' living hints (colour, habitat, food) and the KG-mode rules: 6 of the 7 kinds (no WordNet)
    assert {"wd-attrnoun-living", "wd-attr-living", "wd-attrnoun-world", "wd-attr-world"} <= set(q["kind"])
    hits = pd.concat(pd.read_parquet(p) for p in sorted((demo / "results/demo/search/pool").glob("chunk_*.parquet")))
    assert len(hits) > 0 and set(hits["query_id"]) <= set(q["query_id"])
    urls = pd.read_parquet(demo / "results/demo/urls.parquet")
    assert urls["uid"].is_unique and urls["url"].is_unique and len(urls) >= 10
    assert urls["query_ids"].map(len).min() >= 1
    heldout = pd.read_csv(demo / "resources/demo/eval_heldout.tsv", sep="\t")["local_file"]
    assert not any(u.endswith(f) for u in urls["url"] for f in heldout)  # eval images never in the pool


def test_download_and_shards(demo):
    status = pd.read_parquet(demo / "results/demo/download_status.parquet")
    assert status.loc[status["status"] == "success", "count"].sum() >= 10
    sizes = json.loads((demo / "results/demo/shards/train/sizes.json").read_text())
    assert sum(sizes.values()) >= 8
    with tarfile.open(demo / "results/demo/shards/train/00000.tar") as tf:
        names = tf.getnames()
        meta = json.loads(tf.extractfile(next(n for n in names if n.endswith(".json"))).read())
    assert {n.rsplit(".", 1)[1] for n in names} == {"jpg", "txt", "json"}
    assert {"uid", "url", "query_ids", "alt_texts", "qids", "is_living"} <= set(meta)


def test_training_and_eval(demo):
    summary = json.loads((demo / "results/demo/tiny/train_summary.json").read_text())
    assert summary["epochs"] >= 1 and (demo / "results/demo/tiny/model.safetensors").stat().st_size > 1_000_000
    ev = pd.read_csv(demo / "results/demo/tiny/eval.csv")
    assert list(ev.columns) == ["dataset", "model", "benchmark", "task", "metric", "value", "variant", "n_variants",
                                "samples_seen", "macs_1e18", "status"]
    acc1 = ev[(ev["benchmark"] == "demo_heldout") & (ev["metric"] == "acc1")].iloc[0]
    assert acc1["status"] == "ok" and 0.0 <= acc1["value"] <= 1.0 and acc1["n_variants"] == 2
    assert acc1["variant"] in ("default+openai", "default+none") and acc1["macs_1e18"] > 0
    assert len(list((demo / "results/demo/tiny/eval").glob("demo_heldout__*.json"))) == 2
    assert (demo / "results/demo/tiny/report/eval_bars.png").stat().st_size > 1000
    assert "demo_heldout" in (demo / "results/demo/tiny/report/eval_table.md").read_text()


def test_rerun_is_a_noop(demo):
    r = snakemake(demo, "-n", "--cores", "1", timeout=120)
    assert r.returncode == 0 and "Nothing to be done" in (r.stdout + r.stderr)


def test_logs_and_benchmarks_written(demo):
    for rel in ("logs/demo/kg_dump.log", "logs/demo/download/chunk_00000.log", "logs/demo/tiny/train.log",
                "benchmarks/demo/tiny/train.tsv", "benchmarks/demo/download/chunk_00000.tsv"):
        assert (demo / rel).exists(), rel


def test_html_report_builds(demo):
    r = snakemake(demo, "--report", "report.html", "--cores", "1", timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    html = (demo / "report.html").read_text(errors="replace")
    assert len(html) > 10_000 and "eval_bars.png" in html


def test_demo_ablation_table_and_fig1(demo):
    """The paper outputs by target on the demo: three tiny runs (0/50/100 % alt text) -> ablation table."""
    r = snakemake(demo, "--cores", "2", "results/paper/ablation_demo_tiny.md", timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    md = (demo / "results/paper/ablation_demo_tiny.md").read_text()
    assert "0% alt text" in md and "100% alt text" in md
    assert (demo / "results/paper/ablation_demo_tiny.tex").read_text().count("\\\\") >= 3


def test_killed_training_resumes_from_checkpoint(demo):
    """kill -9 the training job after its first checkpoint; the rerun continues (no restart from scratch)."""
    import os
    import signal
    import subprocess

    from workflow_helpers import REPO

    model = "tiny-alt25"  # a fresh ablation run on the demo shards
    run_dir = demo / f"results/demo/{model}/openclip/run"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(demo), "--cores", "2",
           f"results/demo/{model}/model.safetensors"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first, out_log = run_dir / "checkpoints/epoch_1.pt", run_dir / "out.log"

    def second_epoch_started() -> bool:  # open_clip_train logs it after epoch_1.pt and epoch_latest.pt are written
        return out_log.exists() and "Start epoch 1" in out_log.read_text(errors="replace")

    deadline = time.monotonic() + 600  # a deadline for a hang only; the kill waits for the log line, not a clock
    while time.monotonic() < deadline and not second_epoch_started() and proc.poll() is None:
        time.sleep(0.2)
    assert second_epoch_started() and first.exists(), "no first checkpoint before the deadline"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (demo / f"results/demo/{model}/model.safetensors").exists()
    mtime = first.stat().st_mtime
    assert snakemake(demo, "--unlock", timeout=120).returncode == 0  # kill -9 leaves Snakemake's lock behind
    r = snakemake(demo, "--cores", "2", "--rerun-incomplete", f"results/demo/{model}/model.safetensors", timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    log = (run_dir / "out.log").read_text()
    assert "=> resuming checkpoint" in log and "(epoch 0)" not in log.split("=> resuming checkpoint", 1)[1][:200]
    assert first.stat().st_mtime == mtime  # epoch 1 was not trained again
    assert json.loads((demo / f"results/demo/{model}/train_summary.json").read_text())["epochs"] == 4
