"""Launch one open_clip_train run for the ``train`` rule and collect what it leaves: the command, the export, the
summary.

The recipe (config ``models.<name>``) is turned into open_clip_train flags by :func:`build_train_args`; the budget
is given as **samples seen** (DataComp convention) over ``epochs`` resampled passes, so runs are comparable across
dataset sizes. The run directory (``results/{dataset}/{model}/openclip/run``) is the resumable state and is *not*
a declared output, so Snakemake never deletes it after a failure or a kill: the rerun passes ``--resume latest``
and continues from the last checkpoint. The declared outputs are the exported ``model.safetensors`` (state dict only,
``module.`` prefix stripped: loads under ``weights_only=True``, open_clip#998) and ``train_summary.json``.

With the text mix, ``train_summary.json`` carries ``text_sources``: the texts the training actually drew, counted by
source per epoch (``alt``, the KG text's source list, ``none``; see :func:`collect_text_sources` and
docs/CONTRACTS.md), so the alt-text ablation's shares are measured, not assumed.

Launch (:func:`launcher`): one process on CPU or one GPU; ``torchrun --standalone --nproc-per-node=<gpus>`` for
several GPUs on one node; ``scripts/launch_multinode.sh`` under ``srun`` for several nodes (see README, "Running on a
cluster").
"""

import glob
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _helpers import write_json

log = logging.getLogger("entitynet.train")
#: scripts/: on the training processes' PYTHONPATH, home of launch_multinode.sh
SCRIPTS = Path(__file__).resolve().parents[2]


def shard_spec(shard_dir: str | Path) -> tuple[str, int]:
    """``dir/{00000..0000N}.tar`` brace pattern and total sample count from ``sizes.json``."""
    shard_dir = Path(shard_dir)
    sizes = json.loads((shard_dir / "sizes.json").read_text())
    names = sorted(sizes)
    if not names:
        raise RuntimeError(f"{shard_dir}: no shard in sizes.json")
    first, last = Path(names[0]).stem, Path(names[-1]).stem
    spec = str(shard_dir / f"{first}.tar") if first == last else str(shard_dir / f"{{{first}..{last}}}.tar")
    return spec, int(sum(sizes.values()))


# open_clip_train's --log-every-n-steps (not a config key)
LOG_EVERY_N_STEPS = 10


def build_train_args(recipe: dict, train_spec: str, val_spec: str | None, val_samples: int, logs_dir: str,
                     text_candidates: str | None, gpus: int) -> list[str]:
    """open_clip_train flags for the recipe (the paper's training setup, as given in ``config.models``), resolved by
    ``workflow_config.model_recipe`` (every key set: the schema's defaults, and ``data_path``)."""
    world = max(1, gpus) * max(1, int(recipe["nodes"]))
    epochs = int(recipe["epochs"])
    per_epoch = math.ceil(int(recipe["samples_seen"]) / epochs)
    global_batch = int(recipe["batch_size"]) * world
    steps_per_epoch = math.ceil(per_epoch / global_batch)
    warmup = int(round(float(recipe["warmup_epochs"]) * steps_per_epoch))
    scale, ratio = recipe["augmentation"]["scale"], recipe["augmentation"]["ratio"]
    args = [
        "--model", recipe["arch"],
        "--train-data", train_spec, "--dataset-type", "webdataset", "--dataset-resampled",
        "--train-num-samples", str(per_epoch),
        "--epochs", str(epochs), "--batch-size", str(recipe["batch_size"]),
        "--lr", str(recipe["lr"]), "--beta1", str(recipe["beta1"]), "--beta2", str(recipe["beta2"]),
        "--eps", str(recipe["eps"]), "--wd", str(recipe["wd"]), "--warmup", str(warmup),
        "--lr-scheduler", recipe["lr_scheduler"],
        "--precision", recipe["precision"], "--workers", str(recipe["workers"]),
        "--seed", str(recipe["seed"]),
        "--aug-cfg", "use_timm=True", f"scale=({scale[0]}, {scale[1]})", f"ratio=({ratio[0]}, {ratio[1]})",
        "--logs", logs_dir, "--name", "run", "--resume", "latest", "--save-frequency", "1",
        "--save-most-recent", "--zeroshot-frequency", "0", "--report-to", recipe["report_to"],
        "--log-every-n-steps", str(LOG_EVERY_N_STEPS),
    ]
    if recipe["device"] == "cpu" or gpus == 0:
        args += ["--device", "cpu"]
    if world > 1 or recipe["local_loss"]:
        args += ["--local-loss", "--gather-with-grad"]
    if recipe["torchcompile"]:
        args += ["--torchcompile"]
    if val_spec:
        args += ["--val-data", val_spec, "--val-num-samples", str(val_samples), "--val-frequency", "1"]
    args += ["--entitynet-data-path", recipe["data_path"]]  # its values: the schema's enum
    if recipe["data_path"] == "hybrid":
        args += ["--entitynet-cpu-share", str(recipe["cpu_share"])]
    if recipe["deterministic"]:
        args += ["--entitynet-deterministic"]
    if text_candidates:
        args += ["--entitynet-text-candidates", text_candidates,
                 "--entitynet-alt-text-chance", str(recipe["alt_text_chance"])]
    args += [str(a) for a in recipe["extra_args"]]
    return args


# Ends torchrun's own options: without it, torch.distributed.run's argparse (abbreviations on) rejects script flags
# that are prefixes of its options ("--logs" is ambiguous with --logs-specs/--logs_specs) before the script is even
# started. argparse keeps "--" in the REMAINDER it hands the script, so train_openclip.main drops it again.
SCRIPT_ARGS_SEPARATOR = "--"


def launcher(gpus: int, nodes: int) -> list[str]:
    """Command prefix: plain python, single-node torchrun, or the multi-node srun launcher (which puts the
    separator in itself); the training flags follow it unchanged."""
    wrapper = str(SCRIPTS / "lib" / "train" / "train_openclip.py")
    if nodes > 1:
        # the jobstep executor strips SLURM_* variables: state the layout explicitly
        return ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1",
                str(SCRIPTS / "launch_multinode.sh"), str(gpus), wrapper]
    if gpus > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}", wrapper,
                SCRIPT_ARGS_SEPARATOR]
    return [sys.executable, wrapper]


def final_checkpoint(run_dir: Path, epochs: int) -> Path:
    ck = run_dir / "checkpoints" / f"epoch_{epochs}.pt"
    if ck.exists():
        return ck
    raise RuntimeError(f"training ended without {ck}; see {run_dir / 'out.log'} (open_clip_train exits 0 when the "
                       "experiment dir exists without --resume, so the rule checks the checkpoint itself)")


def export_safetensors(checkpoint: Path, out_path: str) -> int:
    import torch
    from safetensors.torch import save_file

    from _helpers import atomic_path

    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)  # our own trusted checkpoint
    sd = ck.get("state_dict", ck)
    sd = {re.sub(r"^(module\.|_orig_mod\.)+", "", k): v.contiguous() for k, v in sd.items()}
    with atomic_path(out_path, suffix=".safetensors") as tmp:
        save_file(sd, str(tmp))
    return int(ck.get("epoch", 0))


TEXT_SOURCES_GLOB = "text_sources_rank*.json"


def collect_text_sources(run_dir: str | Path) -> dict | None:
    """Sum the ranks' ``text_sources_rank<R>.json`` (written by ``text_sources.TextSourceLog`` in training) into
    ``{"per_epoch": {"1": {source: n}}, "total": {source: n}, "draws", "alt_share", "ranks"}``; None without files.

    Only ranks below the ``world_size`` the files record are read (a file left by an earlier attempt with more
    ranks is stale)."""
    from lib.train.text_sources import summarize_sources

    files = {}
    for path in sorted(Path(run_dir).glob(TEXT_SOURCES_GLOB)):
        m = re.fullmatch(r"text_sources_rank(\d+)\.json", path.name)
        if m:
            files[int(m.group(1))] = json.loads(path.read_text())
    if not files:
        return None
    world = int(files.get(0, next(iter(files.values()))).get("world_size", len(files)))
    used = {r: f for r, f in files.items() if r < world}
    if len(used) < world:
        log.warning("text sources: %d of %d ranks wrote %s", len(used), world, TEXT_SOURCES_GLOB)
    per_epoch: dict[str, dict[str, int]] = {}
    for content in used.values():
        for epoch, counts in content.get("per_epoch", {}).items():
            row = per_epoch.setdefault(str(epoch), {})
            for name, n in counts.items():
                row[name] = row.get(name, 0) + int(n)
    per_epoch = {e: dict(sorted(per_epoch[e].items())) for e in sorted(per_epoch, key=int)}
    return {**summarize_sources(per_epoch), "ranks": sorted(used)}


def run(recipe: dict, shards_dir: str, text_candidates: str | None, run_root: str, out_model: str,
        out_summary: str, gpus: int, nodes: int, log_file: str | None = None) -> dict:
    """Launch the training (its output, every rank's, appended to ``log_file`` when given), then export the final
    checkpoint and write the summary."""
    train_spec, n_train = shard_spec(Path(shards_dir) / "train")
    val_dir = Path(shards_dir) / "val"
    val_spec, n_val = shard_spec(val_dir) if (val_dir / "sizes.json").exists() else (None, 0)
    args = build_train_args(recipe, train_spec, val_spec, n_val, run_root, text_candidates, gpus)
    cmd = launcher(gpus, nodes) + args
    log.info("launch: %s", " ".join(cmd))
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", ENTITYNET_PYTHON=sys.executable)
    t0 = time.time()
    if log_file:
        for h in logging.getLogger().handlers:
            h.flush()
        with open(log_file, "a") as fh:  # the launcher's and every rank's output, beside our own lines
            subprocess.run(cmd, check=True, env=env, stdout=fh, stderr=subprocess.STDOUT)
    else:
        subprocess.run(cmd, check=True, env=env)
    run_dir = Path(run_root) / "run"
    ck = final_checkpoint(run_dir, int(recipe["epochs"]))
    epoch = export_safetensors(ck, out_model)
    summary = {"arch": recipe["arch"], "samples_seen": int(recipe["samples_seen"]), "epochs": epoch,
               "train_samples_in_dataset": n_train, "val_samples": n_val, "checkpoint": str(ck),
               "alt_text_chance": recipe["alt_text_chance"], "wall_s": round(time.time() - t0, 1),
               "gpus": gpus, "nodes": nodes, "args": args,
               "resumed_from": sorted(glob.glob(str(run_dir / "checkpoints" / "epoch_[0-9]*.pt"))),
               "text_sources": collect_text_sources(run_dir) if text_candidates else None}
    if text_candidates and summary["text_sources"] is None:
        log.warning("text mix on, but no %s in %s: the drawn text sources are unknown", TEXT_SOURCES_GLOB, run_dir)
    write_json(summary, out_summary)
    return summary

