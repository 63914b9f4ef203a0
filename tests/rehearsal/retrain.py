"""Retrain one rehearsal model in place and compare it byte for byte with the first training.

The rehearsal trains with two processes under torchrun (gloo, CPU). For a fixed seed, data and recipe the checkpoints,
the exported weights and ``eval.csv`` must not change when the training runs again. The comparison keeps everything
else fixed: the same working directory and the same endpoint ports (the photo URLs carry the port, so another port
base gives other uids, shards and data order, and says nothing about training).

:func:`retrain` digests every file of ``results/rehearsal/<model>`` (weights, summary, every checkpoint, open_clip's
``params.txt`` and ``results.jsonl``, the per-rank text-source counts, ``eval.csv`` and the per-benchmark details),
deletes the model's outputs *and its open_clip run directory* (the train rule resumes from the latest checkpoint it
finds there, which would make a rerun a no-op), runs the ``train`` and ``evaluate`` jobs again and digests again.
Exempt, with their reason: open_clip's ``out.log`` (timestamps and speeds) and ``wall_s`` in ``train_summary.json``.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from rehearsal import run as rehearsal

#: files below results/rehearsal/<model> that may differ, and why
EXEMPT_FILES = {"openclip/run/out.log": "open_clip's log: timestamps and speeds"}
#: JSON file -> keys compared with those keys removed
EXEMPT_KEYS = {"train_summary.json": {"wall_s"}}
#: files that must exist for the comparison to mean anything
REQUIRED = ("model.safetensors", "eval.csv", "train_summary.json", "openclip/run/checkpoints/epoch_1.pt")


def model_dir(workdir: Path, model: str) -> Path:
    return Path(workdir) / "results/rehearsal" / model


def digest(workdir: Path, model: str) -> dict[str, str]:
    """sha256 of every compared file below the model's directory (exempt keys removed from their JSON)."""
    root = model_dir(workdir, model)
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel in EXEMPT_FILES:
            continue
        data = path.read_bytes()
        if rel in EXEMPT_KEYS:
            content = {k: v for k, v in json.loads(data).items() if k not in EXEMPT_KEYS[rel]}
            data = json.dumps(content, sort_keys=True).encode()
        out[rel] = hashlib.sha256(data).hexdigest()
    missing = [rel for rel in REQUIRED if rel not in out]
    if missing:
        raise FileNotFoundError(f"{root}: no {', '.join(missing)} (train and evaluate {model} first)")
    return out


def retrain(workdir: Path, model: str = "vitb32", port_base: int | None = None, cores: int = 2,
            timeout: float = 1200) -> dict:
    """Digest, delete the model's training and evaluation outputs, rerun them, digest again.

    Returns ``{"seconds", "before", "after", "differ", "returncode", "output"}``; ``differ`` lists the files whose
    bytes changed, appeared or vanished."""
    workdir = Path(workdir)
    before = digest(workdir, model)
    shutil.rmtree(model_dir(workdir, model))  # outputs, eval details and the run directory the rule resumes from
    target = f"results/rehearsal/{model}/eval.csv"
    t0 = time.monotonic()
    r = rehearsal.run(workdir, cores=cores, targets=[target], timeout=timeout, capture=True, port_base=port_base)
    seconds = time.monotonic() - t0
    after = digest(workdir, model) if r.returncode == 0 else {}
    differ = sorted(rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel))
    return {"seconds": seconds, "before": before, "after": after, "differ": differ, "returncode": r.returncode,
            "output": r.stdout + r.stderr}
