"""Thin wrapper around ``open_clip_train`` (open_clip_torch 3.3.0, unforked).

Run exactly like ``python -m open_clip_train.main`` (or under ``torchrun``); every upstream flag keeps working
(``--resume``, ``--precision``, ``--torchcompile``, distributed). The wrapper adds two things, through two hooks:

1. **Model configs** — ``open_clip.add_model_config(config/models)`` registers our configs (``EntityNet-tiny-ctx32``,
   ``ViT-B-32-ctx32``, ``ViT-B-16-ctx32``) in this process, so every tokenizer lookup sees context length 32.
   ``add_model_config`` is public API of open_clip 3.3.0.
2. **The paper's text mix** — ``open_clip_train.main`` imports ``get_data`` *by name*
   (``from open_clip_train.data import get_data``), so we replace ``open_clip_train.main.get_data`` with
   ``entitynet_get_data``. It delegates everything to upstream ``get_data`` except the webdataset training split:
   that split is upstream's own (``get_wds_dataset``: its shard stages, epoch arithmetic, WebLoader and
   ``SharedEpoch``) with our sample stages after ``tarfile_to_samples_nothrow`` (:func:`upstream_train_loader`): a
   seeded sample shuffle, and with ``--entitynet-text-candidates`` a text step that draws one text per sample per
   step from the sample's ``.json`` with ``text_sampler.TextSampler`` (the paper's text mix) instead of reading
   ``.txt``. ``tests/unit/test_upstream_drift.py`` fails when the pinned upstream changes the functions this relies
   on. Stable for the 3.3.0 pin: both names are module-level in 3.3.0; upstream ``main`` (4.x) changes them, which
   is why the pin is exact.

3. **Text-source counts** (with the text mix): every text a worker draws is counted by its source (``alt``, the KG
   text's source list, ``none``) in a shared-memory tensor, one row per dataloader worker
   (``text_sources.TextSourceCounts``); the training process snapshots it at the end of each epoch's data and when
   upstream ``main`` returns, and writes ``<logs>/<name>/text_sources_rank<R>.json`` (``text_sources.TextSourceLog``),
   which ``train.py`` sums into ``train_summary.json``. This is what makes the alt-text ablation checkable: the shares are the draws' own.

4. **Faster data paths** (``--entitynet-data-path lean|gpu|hybrid``, ``scripts/lib/train/fast_data.py``): the
   training split is our webdataset pipeline (with the text mix, or upstream's ``.txt`` text without candidates)
   whose workers emit uint8 crops (``lean``), raw JPEG bytes + crop boxes (``gpu``), or a mix of both (``hybrid``),
   and ``data['train'].dataloader`` is a ``device_batches.DeviceBatches``: an iterable with
   ``num_batches``/``num_samples`` that yields ``(images, texts)`` already decoded/cropped/normalised **on the
   device**. That is the hook: ``train_one_epoch`` (3.3.0) only iterates
   the dataloader and reads those two attributes, and its ``images.to(device=device, dtype=input_dtype)`` is then a
   no-op, so no upstream function besides ``get_data`` is replaced. Augmentation (RRC scale/ratio, interpolation,
   mean/std) is read from upstream's own train transform (``crop_spec.crop_spec_from_transform``).

Extra flags (removed before upstream parses the rest):
  --entitynet-text-candidates PATH   text_candidates.parquet (enables the text mix)
  --entitynet-alt-text-chance F      probability of an alt text (required with the text mix: the recipe's
                                     alt_text_chance, whose default is in config/schema.yaml)
  --entitynet-data-path MODE         stock (upstream transform in workers; default) | lean | gpu | hybrid
                                     (see fast_data.py)
  --entitynet-device-prefetch N      lean/gpu/hybrid on CUDA: batches prepared ahead on a side stream (default 2;
                                     0 = inline)
  --entitynet-cpu-share S            hybrid: share of JPEGs the CPU workers crop; auto (default: adaptive from 0.5,
                                     cpu_share.CpuShare) or a fixed number in 0..1
  --entitynet-deterministic          as deterministic as torch allows on GPUs (see :func:`make_deterministic`)

Determinism: on CPU a run is a function of ``--seed`` (data order, crops, text draws, weights; tested). On GPUs some
kernels stay nondeterministic unless told otherwise: cuDNN picks algorithms by timing (``cudnn.benchmark``) and some
of them, and cuBLAS split-K / atomics in backward passes (scatter/index_add, embedding backward), add in varying
order; and the hybrid path's adaptive share decides *by timing* which images the CPU decodes (PIL) and which nvJPEG
decodes (pixels differ by a few levels). ``--entitynet-deterministic`` (recipe key ``deterministic: true``) sets
``torch.use_deterministic_algorithms(True, warn_only=True)``, ``cudnn.deterministic``, no ``cudnn.benchmark``,
``CUBLAS_WORKSPACE_CONFIG=:4096:8``, and fixes an ``auto`` CPU share at 0.5 (upstream's ``main`` turns
``cudnn.benchmark`` back on when CUDA is available; :func:`keep_deterministic` undoes that). It costs speed; ops
without a deterministic kernel still run and warn. NCCL all-reduce order can still differ across world sizes.
"""

import argparse
import logging
import os
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2]  # scripts/: torchrun runs this file, so put the `lib` package on the path
sys.path.insert(0, str(SCRIPTS))
MODEL_CONFIG_DIR = SCRIPTS.parent / "config" / "models"

from lib.train.sample_stages import HasTextAndImage, MixedText, PlainText, eager_batched  # noqa: E402
from lib.train.text_sources import (SourceCountingLoader, TextSourceCounts, TextSourceLog,  # noqa: E402
                                    text_sources_path)


def register_model_configs(config_dir: Path = MODEL_CONFIG_DIR) -> list[str]:
    import open_clip

    open_clip.add_model_config(str(config_dir))
    return sorted(p.stem for p in Path(config_dir).glob("*.json"))


def split_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--entitynet-text-candidates", default=None)
    ap.add_argument("--entitynet-alt-text-chance", type=float, default=None)
    ap.add_argument("--entitynet-data-path", default="stock")  # checked by fast_data.data_path_steps (DATA_PATHS)
    ap.add_argument("--entitynet-device-prefetch", type=int, default=2)
    ap.add_argument("--entitynet-cpu-share", type=parse_cpu_share, default="auto")
    ap.add_argument("--entitynet-deterministic", action="store_true")
    ours, rest = ap.parse_known_args(argv)
    if ours.entitynet_text_candidates and ours.entitynet_alt_text_chance is None:
        ap.error("--entitynet-text-candidates needs --entitynet-alt-text-chance (the recipe's alt_text_chance)")
    return ours, rest


def make_deterministic(cpu_share: str | float) -> str | float:
    """Torch's determinism switches (module docstring); returns the CPU share to use (``auto`` becomes 0.5)."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    logging.getLogger("entitynet").info("deterministic mode: deterministic algorithms, cuDNN deterministic, "
                                        "hybrid CPU share %s", 0.5 if cpu_share == "auto" else cpu_share)
    return 0.5 if cpu_share == "auto" else cpu_share


def keep_deterministic(upstream_main) -> None:
    """On a CUDA machine upstream's ``main`` turns ``cudnn.benchmark`` on and ``cudnn.deterministic`` off, after
    :func:`make_deterministic` ran; wrap its ``random_seed`` (first called after those lines, before the model is
    built) so that the deterministic settings are back before any cuDNN kernel is chosen."""
    import torch

    seed_fn = upstream_main.random_seed
    if getattr(seed_fn, "entitynet_deterministic", False):
        return

    def random_seed(*args, **kwargs):
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        return seed_fn(*args, **kwargs)

    random_seed.entitynet_deterministic = True
    upstream_main.random_seed = random_seed


def parse_cpu_share(value: str) -> str | float:
    """``auto`` (adaptive, starting at 0.5) or a fixed share of JPEGs cropped on the CPU workers, 0..1."""
    if value == "auto":
        return value
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"--entitynet-cpu-share must be 'auto' or a number in 0..1, got {value!r}")
    return share


_SOURCE_LOGS: list[TextSourceLog] = []  # this process's logs; main() takes the final snapshot


def upstream_train_loader(args, preprocess_img, epoch: int, tokenizer):
    """Upstream's own training split (``open_clip_train.data.get_wds_dataset``) cut after its shard stages.

    Returns ``(DataInfo, dataset, shard stages)``: the DataInfo's WebLoader, ``num_batches``/``num_samples``
    (upstream's epoch arithmetic and checks) and ``shared_epoch`` are upstream's; ``dataset`` is the webdataset
    pipeline the loader iterates, and the shard stages are its stages up to and including
    ``tarfile_to_samples_nothrow`` (resampled shards, or the seeded shard shuffle + node/worker split). The caller
    puts its own sample stages after them (:func:`mixed_text_wds_dataset`). Nothing is iterated here: the loader's
    workers start at the first iteration. A pin whose pipeline has another shape is refused, naming what to re-check
    (``tests/unit/test_upstream_drift.py`` flags any change of the function itself).
    """
    import torch.utils.data as tud
    from open_clip_train.data import get_wds_dataset, tarfile_to_samples_nothrow

    info = get_wds_dataset(args, preprocess_img, is_train=True, epoch=epoch, tokenizer=tokenizer)
    torch_loader = (getattr(info.dataloader, "pipeline", None) or [None])[0]  # wds.WebLoader wraps a DataLoader
    dataset = getattr(torch_loader, "dataset", None) if isinstance(torch_loader, tud.DataLoader) else None
    stages = getattr(dataset, "pipeline", [])
    cut = next((k for k, stage in enumerate(stages) if stage is tarfile_to_samples_nothrow), None)
    if cut is None:
        raise RuntimeError("open_clip_train.data.get_wds_dataset no longer returns a WebLoader over a pipeline that "
                           "reads the tars with tarfile_to_samples_nothrow: re-check "
                           "train_openclip.upstream_train_loader against the pin")
    return info, dataset, stages[:cut + 1]


def _sample_stages(args, preprocess_img, shared_epoch, text_step, text_key: str, candidates: str | None,
                   data_path: str, cpu_share: str | float) -> tuple[list, object, object]:
    """Our stages after upstream's shard stages: seeded sample shuffle, filter, image step of ``data_path``, text step,
    batching. Returns ``(stages, device step or None, monitor or None)``."""
    import webdataset as wds

    from lib.train import fast_data
    from lib.train.crop_spec import crop_spec_from_transform
    from open_clip_train.data import _SAMPLE_SHUFFLE_INITIAL, _SAMPLE_SHUFFLE_SIZE, detshuffle2, log_and_continue

    stages = [
        # seeded from the worker seed and the epoch (upstream's wds.shuffle() here is seeded from pid + time, so one
        # --seed gave different sample orders and different models from run to run)
        detshuffle2(bufsize=_SAMPLE_SHUFFLE_SIZE, initial=_SAMPLE_SHUFFLE_INITIAL, seed=-1, epoch=shared_epoch),
        wds.select(HasTextAndImage(text_key)),
    ]
    if data_path == "stock":
        stages.append(wds.decode("pilrgb", handler=log_and_continue))
    stages.append(wds.rename(image="jpg;png;jpeg;webp", json="json") if candidates else
                  wds.rename(image="jpg;png;jpeg;webp", text="txt"))
    # The text step comes after the image step (which may drop an undecodable sample) and the batching has no
    # look-ahead (eager_batched): every text drawn is a text trained on, so the source counts are the batches'.
    if data_path == "stock":
        return stages + [wds.map_dict(image=preprocess_img), text_step, wds.to_tuple("image", "text"),
                         eager_batched(args.batch_size)], None, None
    spec = crop_spec_from_transform(preprocess_img)
    logging.getLogger("entitynet").info("data path %s on %s: %s", data_path, args.device, spec)
    steps = fast_data.data_path_steps(data_path, spec, args.batch_size, cpu_share)
    stages += [wds.map_dict(image=steps.image, handler=log_and_continue), text_step, wds.to_tuple("image", "text"),
               eager_batched(args.batch_size, collation_fn=steps.collate)]
    return stages, steps.device, steps.monitor


def mixed_text_wds_dataset(args, preprocess_img, epoch: int, tokenizer, candidates: str | None,
                           alt_text_chance: float, data_path: str = "stock", prefetch: int = 2,
                           cpu_share: str | float = "auto"):
    """Training webdataset: upstream's train split (:func:`upstream_train_loader`) with our sample stages, i.e. the
    paper's per-step text mix when ``candidates`` is given (else upstream's ``.txt``) and the image step of
    ``data_path`` (stock|lean|gpu|hybrid; ``cpu_share``: the hybrid path's CPU share, ``auto`` = adaptive from
    0.5)."""
    import webdataset as wds

    from lib.train.device_batches import DeviceBatches
    from open_clip_train.data import DataInfo

    info, dataset, shard_stages = upstream_train_loader(args, preprocess_img, epoch, tokenizer)
    shared_epoch, loader = info.shared_epoch, info.dataloader
    counts = None
    if candidates:
        from lib.train import text_sampler

        counts = TextSourceCounts(text_sampler.candidate_sources(candidates), slots=max(1, args.workers))
        text_step = wds.map(MixedText(candidates, alt_text_chance, args.seed, tokenizer, counts))
    else:
        text_step = wds.map(PlainText(tokenizer))
    stages, device_step, monitor = _sample_stages(args, preprocess_img, shared_epoch, text_step,
                                                  "json" if candidates else "txt", candidates, data_path, cpu_share)
    dataset.pipeline = shard_stages + stages  # the loader iterates its dataset's stages only once started
    if device_step is not None:
        loader = DeviceBatches(loader, device_step, args.device, prefetch=prefetch, monitor=monitor)
    if counts is not None:
        log = TextSourceLog(counts, text_sources_path(args), start_epoch=epoch, rank=getattr(args, "rank", 0),
                            world_size=getattr(args, "world_size", 1), alt_text_chance=alt_text_chance)
        _SOURCE_LOGS.append(log)
        loader = SourceCountingLoader(loader, log, shared_epoch)
    return DataInfo(dataloader=loader, shared_epoch=shared_epoch)


def make_get_data(candidates: str | None, alt_text_chance: float, data_path: str = "stock", prefetch: int = 2,
                  cpu_share: str | float = "auto"):
    from open_clip_train import data as upstream

    def entitynet_get_data(args, preprocess_fns, epoch=0, tokenizer=None):
        # every webdataset training split is ours, the stock path too: its sample shuffle is seeded (see
        # mixed_text_wds_dataset); other dataset types stay upstream's
        if not args.train_data or getattr(args, "dataset_type", "auto") != "webdataset":
            return upstream.get_data(args, preprocess_fns, epoch=epoch, tokenizer=tokenizer)
        train_data, args.train_data = args.train_data, None  # let upstream build everything but the train split
        try:
            data = upstream.get_data(args, preprocess_fns, epoch=epoch, tokenizer=tokenizer)
        finally:
            args.train_data = train_data
        data["train"] = mixed_text_wds_dataset(args, preprocess_fns[0], epoch, tokenizer, candidates,
                                               alt_text_chance, data_path, prefetch, cpu_share)
        return data

    return entitynet_get_data


def script_args(argv: list[str]) -> list[str]:
    """The training flags as the launcher gave them: a leading ``--`` (put after the script by the torchrun
    launchers so that torchrun's parser never reads the flags, see ``launch.launcher``) is dropped."""
    return argv[1:] if argv[:1] == ["--"] else list(argv)


def allow_cpu_ddp() -> None:
    """Let upstream wrap a CPU model in DistributedDataParallel (several CPU processes under torchrun, gloo).

    open_clip_train 3.3.0 ``main`` always passes ``device_ids=[device]``, which torch refuses for a CPU module
    ("device_ids ... only work with single-device/multiple-device GPU modules or CPU modules"): every multi-process
    CPU run dies before its first step. For CPU devices we drop ``device_ids`` (torch's documented form for CPU
    modules); GPU runs are untouched. Upstream: mlfoundations/open_clip ``src/open_clip_train/main.py``, the DDP
    wrap (no ``device.type`` check as of 3.3.0).
    """
    import torch

    ddp = torch.nn.parallel.DistributedDataParallel
    if getattr(ddp, "_entitynet_cpu_ok", False):
        return

    class CpuSafeDDP(ddp):
        _entitynet_cpu_ok = True

        def __init__(self, module, device_ids=None, *args, **kwargs):
            if device_ids and all(torch.device(d).type == "cpu" for d in device_ids):
                device_ids = None
            super().__init__(module, device_ids, *args, **kwargs)

    torch.nn.parallel.DistributedDataParallel = CpuSafeDDP


def exit_with_launcher(interval_s: float = 2.0) -> bool:
    """Under torchrun, end this training process when its launcher dies.

    torchrun starts each worker in a session of its own, so a ``kill -9`` of torchrun (or of the Snakemake job
    above it, outside Slurm's cgroups) left the workers training on as orphans, writing checkpoints into the run
    directory while the rerun resumed from it. A daemon thread checks every ``interval_s`` whether the parent
    process is still the launcher and otherwise exits at once. Returns whether the watch was started."""
    import threading

    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return False
    launcher_pid = os.getppid()

    def watch():
        while True:
            time.sleep(interval_s)
            if os.getppid() != launcher_pid:
                logging.getLogger("entitynet").error("launcher %d is gone: ending training process %d",
                                                     launcher_pid, os.getpid())
                os._exit(3)

    threading.Thread(target=watch, name="exit-with-launcher", daemon=True).start()
    return True


def main(argv: list[str] | None = None) -> int:
    ours, rest = split_args(script_args(sys.argv[1:] if argv is None else argv))
    exit_with_launcher()
    register_model_configs()
    allow_cpu_ddp()
    if ours.entitynet_deterministic:
        ours.entitynet_cpu_share = make_deterministic(ours.entitynet_cpu_share)
    import open_clip_train.main as upstream_main

    if ours.entitynet_deterministic:
        keep_deterministic(upstream_main)
    upstream_main.get_data = make_get_data(ours.entitynet_text_candidates, ours.entitynet_alt_text_chance,
                                           ours.entitynet_data_path, ours.entitynet_device_prefetch,
                                           ours.entitynet_cpu_share)
    logging.getLogger("entitynet").info("open_clip_train args: %s", rest)
    try:
        result = upstream_main.main(rest)
    finally:
        finish_text_sources()
    return 0 if result is None else int(result)


def finish_text_sources() -> None:
    """Final snapshot of every text-source log of this process (draws after the last epoch end, normally none)."""
    while _SOURCE_LOGS:
        out = _SOURCE_LOGS.pop(0).snapshot()
        logging.getLogger("entitynet").info("text sources drawn (rank %s): %d texts, alt share %s, %s",
                                            out["rank"], out["draws"], out["alt_share"], out["total"])


if __name__ == "__main__":
    from _helpers import exit_now  # see there: pyarrow can abort at interpreter exit

    exit_now(main())
