"""``clip_benchmark`` CLI (1.6.2, unforked) with two thin fixes applied in-process.

1. Our model configs are registered (``open_clip.add_model_config(config/models)``), because clip_benchmark calls
   ``open_clip.create_model_and_transforms(name)`` and ``get_tokenizer(name)`` in its own process.
2. NumPy ≥ 2.4 fix: ``clip_benchmark.metrics.zeroshot_classification.accuracy`` calls ``float()`` on a 1-element
   array, which NumPy 2.4 rejects ("only 0-dimensional arrays can be converted to Python scalars"); every zero-shot
   classification run then fails. We replace it with the same top-k computation using ``.item()``. Upstream:
   LAION-AI/CLIP_benchmark ``metrics/zeroshot_classification.py::accuracy`` (no release with a fix as of 1.6.2).

Usage: ``python scripts/clip_benchmark_wrapped.py eval --model … --pretrained … --dataset wds/NAME …``, or
``python scripts/clip_benchmark_wrapped.py batch JOBS.json`` to run several ``eval`` command lines (a JSON list of
``{"name": ..., "argv": [...]}``) one after the other in this one process: the imports and the model config
registration are paid once, not once per prompt variant (the paper's suite has ~30 variants). Each job is exactly
``clip_benchmark eval`` with its own arguments (``cli.run`` seeds torch per job, so the results equal separate
processes'); a failed job is reported on stderr and the others still run. Exit status: 0, or 1 if any job failed.
"""

import json
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def accuracy(output, target, topk=(1,)):
    """Top-k accuracy, identical to clip_benchmark's except for the NumPy-2.4-safe scalar conversion."""
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    n = len(target)
    return [correct[:k].reshape(-1).float().sum().item() / n for k in topk]


def patch() -> None:
    import clip_benchmark.metrics.zeroshot_classification as zc

    from train_openclip import register_model_configs

    register_model_configs()
    zc.accuracy = accuracy


def main(argv: list[str]) -> int:
    patch()
    from clip_benchmark import cli

    if argv[:1] != ["batch"]:
        sys.argv = ["clip_benchmark"] + argv
        cli.main()
        return 0
    failed = []
    for job in json.loads(Path(argv[1]).read_text()):
        sys.argv = ["clip_benchmark"] + list(job["argv"])
        print(f"clip_benchmark job {job['name']}", flush=True)
        try:
            cli.main()
        except (Exception, SystemExit):  # argparse exits; report it and go on with the next job
            traceback.print_exc()
            failed.append(job["name"])
    if failed:
        print(f"clip_benchmark jobs failed: {failed}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    from _helpers import exit_now  # see there: pyarrow can abort at interpreter exit

    exit_now(main(sys.argv[1:]))
