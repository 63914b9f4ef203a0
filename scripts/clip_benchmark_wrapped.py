"""``clip_benchmark`` CLI (1.6.2, unforked) with two thin fixes applied in-process.

1. Our model configs are registered (``open_clip.add_model_config(config/models)``), because clip_benchmark calls
   ``open_clip.create_model_and_transforms(name)`` and ``get_tokenizer(name)`` in its own process.
2. NumPy ≥ 2.4 fix: ``clip_benchmark.metrics.zeroshot_classification.accuracy`` calls ``float()`` on a 1-element
   array, which NumPy 2.4 rejects ("only 0-dimensional arrays can be converted to Python scalars"); every zero-shot
   classification run then fails. We replace it with the same top-k computation using ``.item()``. Upstream:
   LAION-AI/CLIP_benchmark ``metrics/zeroshot_classification.py::accuracy`` (no release with a fix as of 1.6.2).

Usage: ``python scripts/clip_benchmark_wrapped.py eval --model … --pretrained … --dataset wds/NAME …``
"""

import sys
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


def main(argv: list[str]) -> None:
    patch()
    from clip_benchmark import cli

    sys.argv = ["clip_benchmark"] + argv
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
