"""Fast training data paths for the open_clip_train wrapper (``--entitynet-data-path {stock,lean,gpu,hybrid}``):
which worker step, collation and device step each mode uses (:func:`data_path_steps`).

Why: with upstream's data path (PIL decode + bicubic RandomResizedCrop + ToTensor + Normalize in the dataloader
workers) a 16-core H100 box feeds ViT-B/32 at ~0.9k samples/s from the paper's 512-px storage, against a compute
ceiling of ~5k/s (perf/README.md). The three modes keep **the stock augmentation semantics** of open_clip's training
transform (which they read from upstream's own transform object, :func:`lib.train.crop_spec.crop_spec_from_transform`):
RandomResizedCrop with the configured scale/ratio (paper: 0.4–1.0, 0.9–1.111), no flip, no colour jitter, PIL-style
antialiased bicubic resize (``a = -0.5``), ``x/255``, ``(x - mean) / std``. Any other transform in the pipeline
(jitter, grayscale, random erasing, ...) is refused with an error rather than silently dropped. The crop boxes are
drawn by the stock transform's own sampler (:func:`lib.train.crop_spec.draw_box`: timm's
``RandomResizedCropAndInterpolation`` from Python's ``random``, which open_clip's ``use_timm`` transform and so the
product use, or torchvision's from torch's RNG), draw for draw; the DataLoader seeds both per worker, so a fast path
and the stock path whose workers share a seed crop the same boxes of the same sample sequence (tests compare their
loss curves step by step).

Modes
-----
``stock``  upstream open_clip_train data path (or our text-mix pipeline with upstream's image transform).
``lean``   workers: PIL header → crop box (``draw_box``) → JPEG DCT-domain downscale, ``Image.draft``, *only*
           by a factor that keeps the crop at least the output size (so draft never makes a crop that would be
           downscaled be upscaled instead) → PIL bicubic crop+resize → **uint8** ``[3, S, S]`` (4× less IPC than
           float32). Device: cast, ``/255``, normalise (``normalize_batch``).
``gpu``    workers: PIL header only (no decode) → crop box; emit the raw JPEG bytes, packed per batch into one
           buffer (``collate_gpu``). Device: one batched nvJPEG decode (``torchvision.io.decode_jpeg`` with
           ``device="cuda"``; on CPU the same call decodes on CPU so tests exercise the logic), then **one batched
           crop+resize** (``resized_crop_batch``: two batched matmuls with per-sample separable filter
           matrices) and normalise. Non-JPEG or CMYK samples are cropped/resized on the worker (lean path) and
           scattered into the batch.
``hybrid`` the two split by a shared share (``CpuShare``, ``HybridImage``): the workers crop that share of
           the JPEGs themselves (as ``lean``) and send the rest as bytes (as ``gpu``); the device step is ``gpu``'s.
           With ``cpu_share: auto`` the main process moves the share by the loader's backlog and waits, so the
           workers stay about saturated and nvJPEG, which competes with training for the GPU, does only the rest.
           ``lean`` keeps a 16-core H100 box at ~1.7k img/s from 512-px storage, and nvJPEG decodes ~14.6k img/s
           there (perf/README.md); the split spends both.

Modules (``lib.train``)
-----------------------
``crop_spec``       what the stock transform does: ``CropSpec``, ``crop_spec_from_transform``, the box samplers.
``image_steps``     worker steps (``LeanImage``, ``GpuImage``, ``HybridImage``) and ``collate_gpu``.
``cpu_share``       the hybrid path's shared CPU share and its controller (``CpuShare``).
``crop_kernel``     the batched crop+resize kernel (``resized_crop_batch``) and ``normalize_batch``.
``device_steps``    device steps (``LeanDevice``, ``GpuDevice``, ``decode_jpegs``).
``device_batches``  the hook into upstream's train loop (``DeviceBatches``).
``synthetic_shards`` synthetic shards for the tests and perf/.

Storage size: :func:`lib.data.resize_spec.min_lossless_short_side` gives the smallest stored short side for which
every crop is at least the output size (no upscaling). For 224-px models with scale 0.4 and ratio 0.9 it is 374 px.
So 384-px storage keeps the crop semantics; rule ``resize_shards`` derives it from the 512-px download when a recipe
sets ``stored_short_side`` (the config check refuses sizes below the minimum). 256-px storage does **not** (small
crops become ~1.4× upscales); the benchmark reports 256-px rates only for comparison
with earlier measurements.
"""

from typing import Any, Callable, NamedTuple

from lib.train.cpu_share import CpuShare
from lib.train.crop_spec import CropSpec
from lib.train.device_steps import GpuDevice, LeanDevice
from lib.train.image_steps import GpuImage, HybridImage, LeanImage, collate_gpu

DATA_PATHS = ("stock", "lean", "gpu", "hybrid")


class DataPathSteps(NamedTuple):
    """The pieces of one fast data path: per-sample worker ``image`` step, batch ``collate`` function (None: the
    default collation), ``device`` step for :class:`lib.train.device_batches.DeviceBatches` and its ``monitor``
    (the hybrid path's :class:`CpuShare`, else None)."""

    image: Callable[[bytes], Any]
    collate: Callable | None
    device: Callable
    monitor: CpuShare | None


def data_path_steps(data_path: str, spec: CropSpec, batch_size: int, cpu_share: str | float = "auto") -> DataPathSteps:
    """The steps of ``data_path`` (``lean``, ``gpu`` or ``hybrid``; ``stock`` is upstream's transform and has none)
    for crop ``spec``; ``cpu_share``: the hybrid path's CPU share, ``auto`` = adaptive from 0.5."""
    if data_path == "lean":
        return DataPathSteps(LeanImage(spec), None, LeanDevice(spec), None)
    if data_path == "gpu":
        return DataPathSteps(GpuImage(spec), collate_gpu, GpuDevice(spec), None)
    if data_path == "hybrid":
        auto = cpu_share == "auto"
        share = CpuShare(0.5 if auto else float(cpu_share), adaptive=auto, batch_size=batch_size)
        return DataPathSteps(HybridImage(spec, share), collate_gpu, GpuDevice(spec), share)
    raise ValueError(f"--entitynet-data-path must be one of {DATA_PATHS}, got {data_path!r}")
