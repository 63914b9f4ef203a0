"""Is the rehearsal's two-process CPU training deterministic, and what does retraining one model cost?

    .venv/bin/python perf/rehearsal_retrain.py --workdir WORKDIR --port-base N
    .venv/bin/python perf/rehearsal_retrain.py --workdir WORKDIR --port-base N --model vitb16

When the workdir has no trained ``results/rehearsal/<model>`` yet, the rehearsal's ``<model>/eval.csv`` target is run
first (timed as "first run"); then ``tests/rehearsal/retrain.py`` deletes the model's outputs and open_clip run
directory, trains and evaluates it again in the same workdir on the same ports, and compares every file byte for byte
(exemptions in that module). Use the port base of the first run (the photo URLs carry the port). Prints the seconds
and the verdict; exits 1 when a file differs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "scripts")]

from rehearsal import retrain as rt  # noqa: E402
from rehearsal import run as rehearsal  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--port-base", type=int, default=None)
    ap.add_argument("--model", default="vitb32")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args(argv)
    if not (rt.model_dir(args.workdir, args.model) / "eval.csv").exists():
        t0 = time.monotonic()
        r = rehearsal.run(args.workdir, cores=args.cores, targets=[f"results/rehearsal/{args.model}/eval.csv"],
                          capture=True, port_base=args.port_base)
        if r.returncode:
            print((r.stdout + r.stderr)[-4000:])
            return r.returncode
        print(f"first run (rehearsal up to {args.model}/eval.csv): {time.monotonic() - t0:.1f} s")
    res = rt.retrain(args.workdir, args.model, args.port_base, args.cores)
    if res["returncode"]:
        print(res["output"][-4000:])
        return res["returncode"]
    print(f"retrain + evaluate {args.model}: {res['seconds']:.1f} s")
    print(f"files compared: {len(res['before'])}")
    for rel in ("model.safetensors", "eval.csv", "openclip/run/checkpoints/epoch_1.pt"):
        print(f"  {rel}: {res['before'][rel][:16]} -> {res['after'].get(rel, 'missing')[:16]}")
    print("byte-identical" if not res["differ"] else f"DIFFER: {res['differ']}")
    return 1 if res["differ"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
