"""Evaluation of one model on a benchmark suite with clip_benchmark (rules ``evaluate`` and ``evaluate_baseline``).

For every benchmark each prompt variant runs — class-name style × template set (``openai``: the 80 OpenAI
ImageNet templates shipped with clip_benchmark; ``none``: the bare class name; ``dataset``: the dataset's own
templates), plus any image-resize variants (``resize_variants``: e.g. CUB's ``squash``, the whole image resized to
the model's square input without a crop, with the bare class name, as the authors evaluate CUB) — each variant's
clip_benchmark JSON is written under the output folder, and the ``eval.csv`` rows give the **best variant** per
metric, as the paper does, with the name of that variant. All variants of all benchmarks run in one clip_benchmark
process (``clip_benchmark_wrapped.py batch``). A benchmark whose data is not present is a ``missing`` row (never
silently skipped); it fails the run only with ``fail_on_missing: true``. Training MACs fill the ``macs_1e18`` column.
"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from lib.common.artifact_columns import EVAL_COLUMNS

log = logging.getLogger("entitynet.suite_evaluation")
SCRIPTS = Path(__file__).resolve().parents[2]  # scripts/: the wrapper's PYTHONPATH
WRAPPER = Path(__file__).with_name("clip_benchmark_wrapped.py")

METRICS = {"zeroshot_classification": ["acc1", "acc5", "mean_per_class_recall"],
           "zeroshot_retrieval": ["image_retrieval_recall@1", "text_retrieval_recall@1",
                                  "image_retrieval_recall@5", "text_retrieval_recall@5"]}


def openai_templates() -> list[str]:
    import clip_benchmark

    path = Path(clip_benchmark.__file__).parent / "datasets" / "en_zeroshot_classification_templates.json"
    return json.loads(path.read_text())["imagenet1k"]


def variants(bench: dict) -> list[dict]:
    """Every (class-name style, template set) pair of a benchmark, with a readable name."""
    if bench["task"] != "zeroshot_classification":
        return [{"name": "default", "classnames": None, "templates": None}]
    out = []
    cnames = (bench.get("classname_variants") or {"default": None}).items()
    for cname, cpath in cnames:
        for tname in bench.get("template_variants", ["openai", "none"]):
            out.append({"name": f"{cname}+{tname}", "classnames": cpath, "templates": tname, "resize": None})
    # image-preprocessing variants: the model's default (resize + centre crop) above; each resize mode here runs
    # with the template sets listed for it
    for rmode, tnames in (bench.get("resize_variants") or {}).items():
        for cname, cpath in cnames:
            for tname in tnames:
                out.append({"name": f"{cname}+{tname}+{rmode}", "classnames": cpath, "templates": tname,
                            "resize": rmode})
    return out


def benchmark_present(bench: dict) -> bool:
    root = bench.get("root")
    return bool(root) and Path(root).exists()


def variant_argv(bench: dict, variant: dict, arch: str, weights: str, out_json: Path, work: Path,
                 device_batch: int) -> list[str]:
    """The ``clip_benchmark eval`` arguments of one prompt variant (custom template / class-name files under work)."""
    args = ["eval", "--model", arch, "--pretrained", weights, "--dataset", bench["dataset"],
            "--dataset_root", bench["root"], "--task", bench["task"], "--batch_size", str(device_batch),
            "--num_workers", "0", "--output", str(out_json), "--recall_k", "1", "5"]
    short = bench["dataset"].split("/", 1)[-1]
    if variant["templates"] in ("openai", "none"):
        templates = openai_templates() if variant["templates"] == "openai" else ["{c}"]
        tfile = work / f"templates_{short}_{variant['templates']}.json"  # one per benchmark: jobs run in one batch
        tfile.write_text(json.dumps({bench["dataset"]: templates, short: templates}))
        args += ["--custom_template_file", str(tfile)]
    if variant["classnames"]:
        names = Path(variant["classnames"]).read_text().splitlines()
        cfile = work / f"classnames_{short}_{variant['name']}.json"
        cfile.write_text(json.dumps({bench["dataset"]: names, short: names}))
        args += ["--custom_classname_file", str(cfile)]
    if variant.get("resize"):
        from lib.eval import clip_benchmark_wrapped

        args += [clip_benchmark_wrapped.RESIZE_FLAG, variant["resize"]]
    return args


def run_jobs(jobs: list[dict], weights: str, work: Path) -> dict[str, dict]:
    """Run every ``{"name", "argv", "out"}`` job in one ``clip_benchmark_wrapped.py batch`` process; return
    ``{name: metrics}``. A job without its output JSON is an error naming it (the process log is in the rule log)."""
    if not jobs:
        return {}
    jobs_file = work / "clip_benchmark_jobs.json"
    jobs_file.write_text(json.dumps([{"name": j["name"], "argv": j["argv"]} for j in jobs], indent=1))
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS))
    if Path(weights).exists():  # our own checkpoint: never touch a model hub
        env["HF_HUB_OFFLINE"] = "1"
    cmd = [sys.executable, str(WRAPPER), "batch", str(jobs_file)]
    log.info("clip_benchmark: %d jobs in one process: %s", len(jobs), " ".join(cmd))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log.info("clip_benchmark output:\n%s", (proc.stdout + proc.stderr)[-6000:])
    missing = [j["name"] for j in jobs if not Path(j["out"]).exists()]
    if proc.returncode != 0 or missing:
        raise RuntimeError(f"clip_benchmark failed (exit {proc.returncode}) on {missing or 'a job'}; see the log")
    return {j["name"]: json.loads(Path(j["out"]).read_text())["metrics"] for j in jobs}


def no_value_row(name: str, bench: dict, status: str) -> dict:
    """The one row of a benchmark that was not evaluated (``missing`` or ``skipped``)."""
    return {"benchmark": name, "task": bench["task"], "metric": METRICS[bench["task"]][0], "value": None,
            "variant": None, "n_variants": 0, "status": status}


def best_rows(bench_name: str, task: str, results: dict[str, dict]) -> list[dict]:
    """One row per metric: the best value over variants and the variant that gave it."""
    rows = []
    for metric in METRICS[task]:
        vals = {v: m[metric] for v, m in results.items() if metric in m}
        if not vals:
            continue
        best = max(vals, key=lambda v: (vals[v], v))
        rows.append({"benchmark": bench_name, "task": task, "metric": metric, "value": float(vals[best]),
                     "variant": best, "n_variants": len(vals), "status": "ok"})
    return rows


def model_macs(arch: str, samples_seen: int, text_context: int, count: str, global_batch: int | None = None) -> float | None:
    """Training MACs in 1e18 (``macs.training_macs``) under ``count`` (``evaluation.mac_count``: ``authors`` or
    ``matmul``); ``global_batch`` is the batch the authors' count divides its loss term by (None: 8192)."""
    try:
        from lib.train import macs
        import open_clip

        from lib.train.train_openclip import register_model_configs

        register_model_configs()
        cfg = open_clip.get_model_config(arch)
        return macs.training_macs(cfg, samples_seen, text_context=text_context, count=count,
                                  batch_size=global_batch) / 1e18
    except Exception as e:  # the MAC column is informative; never fail an evaluation on it
        log.warning("MACs not computed for %s: %s", arch, e)
        return None


def evaluate(dataset: str, model: str, arch: str, weights: str, suite: dict[str, dict], out_dir: str,
             samples_seen: int, fail_on_missing: bool, batch_size: int, text_context: int, *, mac_count: str,
             skip=(), global_batch: int | None = None, macs_arch: str | None = None) -> pd.DataFrame:
    """``eval.csv`` rows of a model on a suite; benchmarks in ``skip`` (``evaluation.skip``) are ``skipped`` rows.

    ``text_context`` and ``mac_count`` are ``evaluation.mac_text_context`` and ``evaluation.mac_count``
    (config/schema.yaml): the text length and convention of the MAC column (:func:`model_macs`).

    ``arch``/``weights`` are clip_benchmark's ``--model``/``--pretrained``; ``macs_arch`` the open_clip architecture
    whose MACs are counted (default ``arch``). A suite where nothing could be evaluated (every benchmark not skipped
    is missing) is an error even with ``fail_on_missing: false``: a table with no value is not a result."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, jobs = [], []
    for name, bench in suite.items():
        if name in set(skip):
            log.warning("benchmark %s: skipped (evaluation.skip)", name)
            rows.append(no_value_row(name, bench, "skipped"))
            continue
        if not benchmark_present(bench):
            msg = f"benchmark {name}: data not found at {bench.get('root')!r}"
            if fail_on_missing:
                raise FileNotFoundError(msg + " (evaluation.fail_on_missing is true)")
            log.warning(msg + "; reported as missing")
            rows.append(no_value_row(name, bench, "missing"))
            continue
        for v in variants(bench):
            out_json = out / f"{name}__{v['name']}.json"
            jobs.append({"name": f"{name}/{v['name']}", "bench": name, "variant": v["name"], "out": str(out_json),
                         "argv": variant_argv(bench, v, arch, weights, out_json, out, batch_size)})
    if not jobs and any(r["status"] == "missing" for r in rows):
        raise FileNotFoundError(f"nothing evaluated: every benchmark of the suite that is not in evaluation.skip is "
                                f"missing ({[r['benchmark'] for r in rows if r['status'] == 'missing']}); prepare "
                                "them (rule prepare_benchmark, docs/BENCHMARKS.md) or list them in evaluation.skip")
    metrics = run_jobs(jobs, weights, out)
    for name, bench in suite.items():
        results = {j["variant"]: metrics[j["name"]] for j in jobs if j["bench"] == name}
        if results:
            rows += best_rows(name, bench["task"], results)
    rows.sort(key=lambda r: list(suite).index(r["benchmark"]))  # suite order, missing ones in place
    df = pd.DataFrame(rows)
    df.insert(0, "model", model)
    df.insert(0, "dataset", dataset)
    df["samples_seen"] = samples_seen
    df["macs_1e18"] = model_macs(macs_arch or arch, samples_seen, text_context, mac_count, global_batch)
    return df[list(EVAL_COLUMNS)]
