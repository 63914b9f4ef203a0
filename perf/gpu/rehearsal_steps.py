"""A few training steps of the rehearsal's ``vitb32`` recipe on one device, through the train rule's own functions
(``launch.build_train_args`` + ``launch.launcher`` -> ``scripts/lib/train/train_openclip.py``): the hybrid data path (CPU workers
+ nvJPEG on CUDA), the text mix, amp_bf16, on the rehearsal's real shards and text candidates.

The shards come from a rehearsal run on this machine (``make rehearsal`` or ``python tests/rehearsal/run.py
results/rehearsal/shards results/rehearsal/text_candidates.parquet``); they are small enough to carry to the GPU
machine. Exit status 0 only if the run finished, both epochs' losses are finite and the log shows the hybrid path on
the requested device.

    python perf/gpu/rehearsal_steps.py --device cuda --out $OUT [--arch ViT-B-32-ctx32]
"""
import argparse
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import yaml  # noqa: E402

from lib.train import launch  # noqa: E402
from lib.common import workflow_config as wc  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    ap.add_argument("--shards", type=Path, default=REPO / "results/rehearsal/shards")
    ap.add_argument("--candidates", type=Path, default=REPO / "results/rehearsal/text_candidates.parquet")
    ap.add_argument("--arch", default=None, help="default: the rehearsal recipe's (ViT-mini-32-ctx32)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/entitynet_rehearsal_steps"))
    a = ap.parse_args(argv)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    recipe = wc.model_recipe(config, "vitb32", "rehearsal")
    recipe.update(device=a.device, gpus=1, workers=a.workers, arch=a.arch or recipe["arch"])
    if a.device == "cpu":
        recipe["precision"] = "fp32"
    train_spec, _ = launch.shard_spec(a.shards / "train")
    args = launch.build_train_args(recipe, train_spec, None, 0, str(a.out / "openclip"), str(a.candidates), 1)
    args = [x for x in args if x != "--device"] if a.device == "cuda" else args
    cmd = launch.launcher(1, 1) + args
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO / "scripts")})
    log_path = a.out / "openclip" / "run" / "out.log"
    log = log_path.read_text() if log_path.exists() else ""
    losses = [float(x) for x in re.findall(r" Loss: ([-+0-9.naif]+) ", log)]
    report = {"cmd": cmd, "rc": proc.returncode, "wall_s": round(time.time() - t0, 1), "losses": losses,
              "hybrid_on_device": bool(re.search(rf"data path hybrid on {a.device}", log + proc.stderr)),
              "epochs_done": len(re.findall(r"Train Epoch: \d+ \[\s*\d+/\d+ \(100%\)\]", log))}
    report["ok"] = (proc.returncode == 0 and bool(losses) and all(math.isfinite(v) for v in losses)
                    and report["hybrid_on_device"])
    (a.out / "rehearsal_steps.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "cmd"}, indent=1))
    if not report["ok"]:
        print((proc.stdout + proc.stderr)[-4000:], file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
