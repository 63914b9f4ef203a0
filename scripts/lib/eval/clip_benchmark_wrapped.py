"""``clip_benchmark`` CLI (1.6.2, unforked) with two thin fixes applied in-process.

1. Our model configs are registered (``open_clip.add_model_config(config/models)``), because clip_benchmark calls
   ``open_clip.create_model_and_transforms(name)`` and ``get_tokenizer(name)`` in its own process.
2. NumPy ≥ 2.4 fix: ``clip_benchmark.metrics.zeroshot_classification.accuracy`` calls ``float()`` on a 1-element
   array, which NumPy 2.4 rejects ("only 0-dimensional arrays can be converted to Python scalars"); every zero-shot
   classification run then fails. We replace it with the same top-k computation using ``.item()``. Upstream:
   LAION-AI/CLIP_benchmark ``metrics/zeroshot_classification.py::accuracy`` (no release with a fix as of 1.6.2).

3. One option of ours, ``--entitynet_resize_mode squash`` (taken out of the command line before clip_benchmark
   parses it): the model's image transform resizes the whole image to the square input size, aspect ratio not kept,
   with bilinear interpolation and no crop, instead of open_clip's resize-shortest-side + centre crop. This is the
   authors' ``squash`` CUB task (their task config: ``resize_mode: squash``, ``interpolation: bilinear``), built
   with open_clip's own ``image_resize_mode``/``image_interpolation`` options.

Usage: ``python scripts/lib/eval/clip_benchmark_wrapped.py eval --model … --pretrained … --dataset wds/NAME …``, or
``python scripts/lib/eval/clip_benchmark_wrapped.py batch JOBS.json`` to run several ``eval`` command lines (a JSON list of
``{"name": ..., "argv": [...]}``) one after the other in this one process: the imports and the model config
registration are paid once, not once per prompt variant (the paper's suite has ~30 variants). Each job is exactly
``clip_benchmark eval`` with its own arguments (``cli.run`` seeds torch per job, so the results equal separate
processes'); a failed job is reported on stderr and the others still run. Exit status: 0, or 1 if any job failed.
"""

import json
import sys
import traceback
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2]  # scripts/, run as a subprocess: put the `lib` package on the path
sys.path.insert(0, str(SCRIPTS))


def accuracy(output, target, topk=(1,)):
    """Top-k accuracy, identical to clip_benchmark's except for the NumPy-2.4-safe scalar conversion."""
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    n = len(target)
    return [correct[:k].reshape(-1).float().sum().item() / n for k in topk]


RESIZE_FLAG = "--entitynet_resize_mode"
#: resize mode -> open_clip create_model_and_transforms options (the authors' squash: bilinear, no crop)
RESIZE_MODES = {"squash": {"image_resize_mode": "squash", "image_interpolation": "bilinear"}}


def split_resize(argv: list[str]) -> tuple[list[str], str | None]:
    """``argv`` without our ``--entitynet_resize_mode MODE`` option, and MODE (``None`` when absent)."""
    if RESIZE_FLAG not in argv:
        return list(argv), None
    i = argv.index(RESIZE_FLAG)
    if i + 1 >= len(argv) or argv[i + 1] not in RESIZE_MODES:
        raise ValueError(f"{RESIZE_FLAG} needs one of {sorted(RESIZE_MODES)}")
    return argv[:i] + argv[i + 2:], argv[i + 1]


def load_open_clip(model_name: str, pretrained: str, cache_dir: str | None = None, device="cpu", *,
                   resize_mode: str | None = None):
    """clip_benchmark's open_clip loader (model, transform, tokenizer), with the image transform of ``resize_mode``."""
    import open_clip

    model, _, transform = open_clip.create_model_and_transforms(
        model_name, pretrained=pretrained, cache_dir=cache_dir, **RESIZE_MODES.get(resize_mode or "", {}))
    return model.to(device), transform, open_clip.get_tokenizer(model_name)


def set_resize_mode(mode: str | None) -> None:
    """Make clip_benchmark load open_clip models with the transform of ``mode`` (``None``: its own loader)."""
    import functools

    import clip_benchmark.models as cm
    from clip_benchmark.models.open_clip import load_open_clip as stock

    cm.TYPE2FUNC["open_clip"] = functools.partial(load_open_clip, resize_mode=mode) if mode else stock


def patch() -> None:
    import clip_benchmark.metrics.zeroshot_classification as zc

    from lib.train.train_openclip import register_model_configs

    register_model_configs()
    zc.accuracy = accuracy


def main(argv: list[str]) -> int:
    patch()
    from clip_benchmark import cli

    if argv[:1] != ["batch"]:
        args, mode = split_resize(argv)
        set_resize_mode(mode)
        sys.argv = ["clip_benchmark"] + args
        cli.main()
        return 0
    failed = []
    for job in json.loads(Path(argv[1]).read_text()):
        print(f"clip_benchmark job {job['name']}", flush=True)
        try:
            args, mode = split_resize(list(job["argv"]))
            set_resize_mode(mode)  # every job sets it: a squash job does not leak into the next one
            sys.argv = ["clip_benchmark"] + args
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
