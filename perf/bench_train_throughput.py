"""Training throughput: compute-only ceiling vs. end-to-end open_clip_train with each data path (issue 7).

One command:

1. writes synthetic webdataset shards at the largest ``--sizes`` short side (JPEG q95; ``.jpg``, ``.txt``, ``.json``
   with ``alt_texts``/``query_ids``; ``sizes.json``; a ``text_candidates.parquet`` for the text mix) and derives the
   smaller sizes from them with ``shard_resize.resize_shard`` (what rule ``resize_shards`` runs), reused if present;
2. measures the **compute-only** rate: the same model, AdamW (recipe betas/eps/wd), ClipLoss, autocast per
   ``--precision``, on device-resident random tensors (a subprocess, so every run starts from a clean device);
3. runs **upstream** open_clip_train end to end (our wrapper with ``--entitynet-data-path stock`` and no text
   candidates: upstream ``get_data``; the wrapper only registers ``config/models``);
4. runs **our wrapper** end to end with the paper's text mix and each ``--paths`` data path (stock, lean, gpu,
   hybrid = adaptive CPU share, ``hybrid:F`` = a fixed CPU share F);

and prints a markdown table: samples/s, ratio to compute-only, and the share of step time spent waiting for data.
End-to-end rates come from open_clip_train's own log lines (``Batch (t)`` is the mean step time over each log
window; windows that end before ``--skip-steps`` are dropped as warm-up).

CPU (correctness only; ~3 min on 2 shared cores, mostly the 9 process start-ups):
    .venv/bin/python perf/bench_train_throughput.py --device cpu
H100 (ViT-B/32 ctx 32, bf16; < 5 min): see perf/README.md.
"""

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))

SHARE = re.compile(r"hybrid data path: cpu share ([0-9.]+) at the end of the epoch \(mean ([0-9.]+) over")
PATHS = ("upstream", "stock", "lean", "gpu", "hybrid")
LINE = re.compile(r"Train Epoch: \d+ \[\s*(\d+)/\d+ .*?Data \(t\): ([0-9.]+) Batch \(t\): ([0-9.]+),.*?"
                  r"Loss: ([0-9.naif]+) ")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    ap.add_argument("--model", default=None, help="default: ViT-B-32-ctx32 on cuda, EntityNet-tiny-ctx32 on cpu")
    ap.add_argument("--batch-size", type=int, default=None, help="per device (default 512 cuda, 16 cpu)")
    ap.add_argument("--steps", type=int, default=None, help="train steps per end-to-end run (default 30 / 10)")
    ap.add_argument("--skip-steps", type=int, default=None, help="warm-up steps not measured (default 10 / 3)")
    ap.add_argument("--log-every", type=int, default=None, help="log window in steps (default 5 / 1)")
    ap.add_argument("--workers", type=int, default=None, help="dataloader workers (default: cores - 2, max 14)")
    ap.add_argument("--precision", default=None, help="default amp_bf16 on cuda, fp32 on cpu")
    ap.add_argument("--torchcompile", action="store_true", help="compile in compute-only and end-to-end runs")
    ap.add_argument("--sizes", default=None, help="stored short sides to test (default 512,384,256 / 512,256); 384 "
                    "is what rule resize_shards derives: the smallest round size that keeps every crop >= 224 px")
    ap.add_argument("--paths", default="upstream,stock,lean,gpu,hybrid",
                    help="subset of upstream,stock,lean,gpu,hybrid; hybrid:F runs hybrid with a fixed CPU share F")
    ap.add_argument("--synthesize-all", action="store_true",
                    help="write every size as fresh synthetic JPEGs instead of deriving the smaller ones from the "
                         "largest with resize_shards (the reference measurements in perf/README.md used fresh "
                         "256-px sources)")
    ap.add_argument("--shards", type=int, default=None, help="shards per size (default 16 / 2)")
    ap.add_argument("--per-shard", type=int, default=None, help="images per shard (default 256 / 32)")
    ap.add_argument("--compute-steps", type=int, default=20)
    ap.add_argument("--work-dir", default="/tmp/entitynet_bench_train", help="shards and run logs")
    ap.add_argument("--run-timeout", type=int, default=300, help="seconds per end-to-end run")
    ap.add_argument("--json-out", default=None, help="also write all results as JSON here")
    ap.add_argument("--compute-only-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    cuda = a.device == "cuda"
    defaults = dict(model="ViT-B-32-ctx32" if cuda else "EntityNet-tiny-ctx32", batch_size=512 if cuda else 16,
                    steps=30 if cuda else 10, skip_steps=10 if cuda else 3, log_every=5 if cuda else 1,
                    workers=max(1, min(14, (os.cpu_count() or 2) - 2)) if cuda else 1,
                    precision="amp_bf16" if cuda else "fp32", shards=16 if cuda else 2,
                    per_shard=256 if cuda else 32, sizes="512,384,256" if cuda else "512,256")
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    bad = [p for p in a.paths.split(",") if not valid_path(p)]
    if bad:
        ap.error(f"unknown --paths {bad}: use {', '.join(PATHS)} or hybrid:F with F in 0..1")
    return a


def valid_path(path: str) -> bool:
    name, _, share = path.partition(":")
    if not share:
        return name in PATHS
    try:
        return name == "hybrid" and 0.0 <= float(share) <= 1.0
    except ValueError:
        return False


def child_env(device: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if device == "cpu":  # on shared CPU cores, OpenMP threads spin on small tensors: one thread is faster and stabler
        env["OMP_NUM_THREADS"] = "1"
    return env


# ------------------------------------------------------------------------------------------------- shards


def ensure_shards(a, size: int, source: dict | None = None) -> dict:
    """Synthetic shards at short side ``size``; with ``source`` (the largest size's shards) they are derived from it
    by ``shard_resize.resize_shard``, the function rule ``resize_shards`` runs, as a real pipeline would."""
    from lib.train import synthetic_shards

    out = Path(a.work_dir) / f"shards_{size}"
    stamp = {"n_shards": a.shards, "per_shard": a.per_shard, "short_side": size, "quality": 95, "seed": size,
             "derived_from": source["stamp"]["short_side"] if source else None, "version": 2}
    info_path = out / "bench_shards.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("stamp") == stamp:
            return info
    t0 = time.time()
    if source is None:
        info = synthetic_shards.write_synthetic_shards(out, a.shards, a.per_shard, size, seed=size,
                                                       processes=min(a.shards, os.cpu_count() or 1))
    else:
        info = derive_shards(source, out, size, processes=min(a.shards, os.cpu_count() or 1))
    info["stamp"] = stamp
    info["gen_s"] = round(time.time() - t0, 1)
    info_path.write_text(json.dumps(info))
    return info


def derive_shards(source: dict, out: Path, size: int, processes: int = 1) -> dict:
    """Resize every tar of ``source`` to short side ``size`` (img2dataset's resizer, JPEG q95); copy the metadata."""
    import multiprocessing as mp
    import shutil

    from lib.data import shard_resize

    src_dir = Path(source["candidates"]).parent
    out.mkdir(parents=True, exist_ok=True)
    tars = sorted(src_dir.glob("*.tar"))
    jobs = [(str(t), str(out / t.name), size, 95) for t in tars]
    with mp.get_context("spawn").Pool(max(1, min(processes, len(jobs)))) as pool:
        stats = pool.starmap(shard_resize.resize_shard, jobs)
    for name in ("sizes.json", "text_candidates.parquet"):
        shutil.copyfile(src_dir / name, out / name)
    jpegs = sum(st["jpegs"] for st in stats)
    return {"spec": source["spec"].replace(str(src_dir), str(out)), "num_samples": source["num_samples"],
            "candidates": str(out / "text_candidates.parquet"),
            "mean_jpeg_bytes": sum(st["jpeg_bytes_out"] for st in stats) / max(1, jpegs),
            "resized": sum(st["resized"] for st in stats), "derived_from": str(src_dir)}


# ------------------------------------------------------------------------------------------------- compute only


def compute_only(a) -> dict:
    """Train steps on device-resident random tensors (runs inside the --compute-only-worker subprocess)."""
    import torch

    from lib.train import train_openclip

    train_openclip.register_model_configs()
    import open_clip
    from open_clip.loss import ClipLoss

    device = torch.device(a.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as open_clip_train main
        torch.backends.cudnn.allow_tf32 = True
    model = open_clip.create_model(a.model, device=device, output_dict=True)  # as open_clip_train
    if a.torchcompile:
        model = torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.2)
    loss_fn = ClipLoss()
    size = model.visual.image_size if hasattr(model, "visual") else model._orig_mod.visual.image_size
    size = size if isinstance(size, (tuple, list)) else (size, size)
    ctx = open_clip.get_model_config(a.model)["text_cfg"]["context_length"]
    images = torch.randn(a.batch_size, 3, *size, device=device)
    texts = torch.randint(0, 49408, (a.batch_size, ctx), device=device)
    amp = a.precision in ("amp_bf16", "amp_bfloat16", "amp")
    dtype = torch.float16 if a.precision == "amp" else torch.bfloat16

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            out = model(images, texts)
            loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        loss.backward()
        opt.step()
        with torch.no_grad():
            (model._orig_mod if a.torchcompile else model).logit_scale.clamp_(0, math.log(100))
        return loss

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(5):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.compute_steps):
        loss = step()
    sync()
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"samples_per_s": a.batch_size * a.compute_steps / dt, "step_ms": 1000 * dt / a.compute_steps,
            "loss": float(loss), "peak_gib": peak}


def run_compute_only(a) -> dict:
    cmd = [sys.executable, __file__, "--compute-only-worker", "--device", a.device, "--model", a.model,
           "--batch-size", str(a.batch_size), "--precision", a.precision, "--compute-steps", str(a.compute_steps)]
    if a.torchcompile:
        cmd.append("--torchcompile")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(a.device), timeout=a.run_timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"compute-only run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------- end to end


def e2e_command(a, shards: dict, path: str, logs: Path) -> list[str]:
    cmd = [sys.executable, str(SCRIPTS / "lib" / "train" / "train_openclip.py"), "--model", a.model,
           "--train-data", shards["spec"], "--dataset-type", "webdataset", "--dataset-resampled",
           "--train-num-samples", str(a.steps * a.batch_size), "--epochs", "1", "--batch-size", str(a.batch_size),
           "--lr", "5e-4", "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-8", "--wd", "0.2",
           "--warmup", str(max(1, a.steps // 4)), "--precision", a.precision, "--workers", str(a.workers),
           "--seed", "0", "--aug-cfg", "use_timm=True", "scale=(0.4, 1.0)", "ratio=(0.9, 1.111)",
           "--logs", str(logs), "--name", "run", "--save-frequency", "0", "--zeroshot-frequency", "0",
           "--report-to", "none", "--log-every-n-steps", str(a.log_every)]
    if a.device == "cpu":
        cmd += ["--device", "cpu"]
    if a.torchcompile:
        cmd.append("--torchcompile")
    if path == "upstream":
        cmd += ["--entitynet-data-path", "stock"]
    else:
        name, _, share = path.partition(":")
        cmd += ["--entitynet-data-path", name, "--entitynet-text-candidates", shards["candidates"],
                "--entitynet-alt-text-chance", "0.5"]
        if name == "hybrid":
            cmd += ["--entitynet-cpu-share", share or "auto"]
    return cmd


def parse_rates(log: str, batch: int, world: int, skip_steps: int) -> dict:
    """Aggregate rate over the log windows that end at or after ``skip_steps`` (steps are 1-based counts)."""
    rows = [(int(n) // (batch * world), float(d), float(b), float(l)) for n, d, b, l in LINE.findall(log)]
    if not rows:
        raise RuntimeError("no 'Train Epoch' log line found")
    windows, prev = [], 0
    for steps_done, d, b, loss in rows:
        windows.append((steps_done - prev, steps_done, d, b, loss))
        prev = steps_done
    kept = [w for w in windows if w[1] > skip_steps and w[0] > 0]
    if not kept:
        raise RuntimeError(f"no log window after {skip_steps} warm-up steps; raise --steps")
    t = sum(n * b for n, _, _, b, _ in kept)
    wait = sum(n * d for n, _, d, _, _ in kept)
    n_steps = sum(n for n, *_ in kept)
    per_window = [batch * world / b for _, _, _, b, _ in kept if b > 0]
    return {"samples_per_s": batch * world * n_steps / t, "median_window_rate": statistics.median(per_window),
            "data_wait_share": wait / t, "measured_steps": n_steps, "final_loss": rows[-1][3],
            "losses_finite": all(math.isfinite(r[3]) for r in rows)}


def run_e2e(a, shards: dict, size: int, path: str) -> dict:
    logs = Path(a.work_dir) / "runs" / f"{size}_{path}_{int(time.time())}"
    cmd = e2e_command(a, shards, path, logs)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(a.device), timeout=a.run_timeout)
    log = proc.stdout + proc.stderr
    (logs.parent / f"{logs.name}.log").write_text(log)
    if proc.returncode != 0:
        raise RuntimeError(f"{path} @ {size}px failed (rc {proc.returncode}):\n{log[-3000:]}")
    res = parse_rates(log, a.batch_size, 1, a.skip_steps)
    res["wall_s"] = round(time.time() - t0, 1)
    shares = SHARE.findall(log)
    if shares:  # hybrid: the share at the end of the run and its mean over the run
        res["cpu_share"], res["mean_cpu_share"] = float(shares[-1][0]), float(shares[-1][1])
    return res


# ------------------------------------------------------------------------------------------------- table


def label(path: str) -> str:
    if path == "upstream":
        return "upstream open_clip_train (stock get_data, .txt)"
    name, _, share = path.partition(":")
    return f"wrapper, text mix, `{name}`" + (f" (cpu share {share} fixed)" if share else
                                              " (cpu share auto)" if name == "hybrid" else "")


def table(a, compute: dict, results: dict, shard_info: dict) -> str:
    lines = [f"model `{a.model}`, batch {a.batch_size}, {a.precision}, device {a.device}, workers {a.workers}, "
             f"{a.steps} steps/run ({a.skip_steps} warm-up), torchcompile {a.torchcompile}", "",
             f"compute-only: **{compute['samples_per_s']:,.0f} samples/s** ({compute['step_ms']:.1f} ms/step"
             + (f", peak {compute['peak_gib']:.1f} GiB" if compute.get("peak_gib") else "") + ")", "",
             "| storage | data path | samples/s | ÷ compute-only | data wait | cpu share (mean) | final loss |",
             "|---|---|---|---|---|---|---|"]
    for (size, path), r in results.items():
        if "error" in r:
            lines.append(f"| {size} px | {label(path)} | failed: {r['error'][:60]} | | | | |")
            continue
        share = f"{r['cpu_share']:.2f} ({r['mean_cpu_share']:.2f})" if "cpu_share" in r else ""
        lines.append(f"| {size} px ({shard_info[size]['mean_jpeg_bytes'] / 1e3:.0f} KB) | {label(path)} | "
                     f"{r['samples_per_s']:,.1f} | {r['samples_per_s'] / compute['samples_per_s']:.0%} | "
                     f"{r['data_wait_share']:.0%} | {share} | {r['final_loss']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.compute_only_worker:
        print(json.dumps(compute_only(a)))
        return 0
    Path(a.work_dir).mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    t0 = time.time()
    largest = max(sizes)
    shard_info = {largest: ensure_shards(a, largest)}
    for s in sizes:  # smaller sizes: derived from the largest, as rule resize_shards derives them from the download
        if s != largest:
            shard_info[s] = ensure_shards(a, s, None if a.synthesize_all else shard_info[largest])
    print(f"shards ready in {time.time() - t0:.0f}s: " +
          ", ".join(f"{s}px mean {i['mean_jpeg_bytes'] / 1e3:.0f} KB" for s, i in shard_info.items()), flush=True)
    compute = run_compute_only(a)
    print(f"compute-only {compute['samples_per_s']:,.1f} samples/s", flush=True)
    results = {}
    for size in sizes:
        for path in a.paths.split(","):
            try:
                results[(size, path)] = run_e2e(a, shard_info[size], size, path)
                r = results[(size, path)]
                print(f"{size}px {path}: {r['samples_per_s']:,.1f} samples/s "
                      f"({r['samples_per_s'] / compute['samples_per_s']:.0%}), wall {r['wall_s']}s", flush=True)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                results[(size, path)] = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
                print(f"{size}px {path}: FAILED {exc}", file=sys.stderr, flush=True)
    md = table(a, compute, results, shard_info)
    print("\n" + md)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"args": vars(a), "compute_only": compute, "shards": shard_info,
                                                "e2e": {f"{s}_{p}": r for (s, p), r in results.items()},
                                                "table_md": md}, indent=2, default=str))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
