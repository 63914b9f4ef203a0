"""Fast training data paths for the open_clip_train wrapper (``--entitynet-data-path {stock,lean,gpu,hybrid}``).

Why: with upstream's data path (PIL decode + bicubic RandomResizedCrop + ToTensor + Normalize in the dataloader
workers) a 16-core H100 box feeds ViT-B/32 at ~0.9k samples/s from the paper's 512-px storage, against a compute
ceiling of ~5k/s (perf/README.md). The three modes keep **the stock augmentation semantics** of open_clip's training
transform (which they read from upstream's own transform object, :func:`crop_spec_from_transform`):
RandomResizedCrop with the configured scale/ratio (paper: 0.4–1.0, 0.9–1.111), no flip, no colour jitter, PIL-style
antialiased bicubic resize (``a = -0.5``), ``x/255``, ``(x - mean) / std``. Any other transform in the pipeline
(jitter, grayscale, random erasing, ...) is refused with an error rather than silently dropped. The crop boxes are
drawn by the stock transform's own sampler (:func:`draw_box`: timm's ``RandomResizedCropAndInterpolation`` from
Python's ``random``, which open_clip's ``use_timm`` transform and so the product use, or torchvision's from torch's
RNG), draw for draw; the DataLoader seeds both per worker, so a fast path and the stock path whose workers share a
seed crop the same boxes of the same sample sequence (tests compare their loss curves step by step).

Modes
-----
``stock``  upstream open_clip_train data path (or our text-mix pipeline with upstream's image transform).
``lean``   workers: PIL header → crop box (:func:`draw_box`) → JPEG DCT-domain downscale, ``Image.draft``, *only*
           by a factor that keeps the crop at least the output size (so draft never makes a crop that would be
           downscaled be upscaled instead) → PIL bicubic crop+resize → **uint8** ``[3, S, S]`` (4× less IPC than
           float32). Device: cast, ``/255``, normalise (:func:`normalize_batch`).
``gpu``    workers: PIL header only (no decode) → crop box; emit the raw JPEG bytes, packed per batch into one
           buffer (:func:`collate_gpu`). Device: one batched nvJPEG decode (``torchvision.io.decode_jpeg`` with
           ``device="cuda"``; on CPU the same call decodes on CPU so tests exercise the logic), then **one batched
           crop+resize** (:func:`resized_crop_batch`: two batched matmuls with per-sample separable filter
           matrices) and normalise. Non-JPEG or CMYK samples are cropped/resized on the worker (lean path) and
           scattered into the batch.
``hybrid`` the two split by a shared share (:class:`CpuShare`, :class:`HybridImage`): the workers crop that share of
           the JPEGs themselves (as ``lean``) and send the rest as bytes (as ``gpu``); the device step is ``gpu``'s.
           With ``cpu_share: auto`` the main process moves the share by the loader's backlog and waits, so the
           workers stay about saturated and nvJPEG, which competes with training for the GPU, does only the rest.
           ``lean`` keeps a 16-core H100 box at ~1.7k img/s from 512-px storage, and nvJPEG decodes ~14.6k img/s
           there (perf/README.md); the split spends both.

The crop+resize kernel
----------------------
PIL's (and torchvision's ``antialias=True``) resize is separable: output row ``o`` of a length-``L`` input is
``sum_k w[o, k] x[k]`` with ``w`` the filter (bicubic ``a=-0.5`` or triangle) evaluated at ``(k + 0.5 - c_o) / f``,
``c_o = (o + 0.5) L / S``, ``f = max(L / S, 1)`` (support scaled on downscale = antialias), normalised per row.
For a batch we build ``Wy[n, S, Hc]`` and ``Wx[n, S, Wc]`` (zero beyond each sample's crop) and compute
``Wy @ X @ Wxᵀ`` for the whole batch (two ``bmm``), where ``X[n, Hc, 3, Wc]`` holds the crops zero-padded to the
largest crop. Filling ``X`` is one strided copy per image (memory staging, no arithmetic); the resize is two batched
GEMMs for the whole batch (chunked to bound memory). Crops, not images, are staged, so memory is bounded by the crop
size (≤ the short side × ratio) even for panoramas. Differences to stock: PIL resizes horizontally, rounds the
intermediate to uint8, then vertically, with fixed-point weights (tests: ≤ 3 levels max, < 0.35 mean); libjpeg-turbo
vs. nvJPEG IDCT; the output is rounded and clipped to 0..255 like PIL's. Against torchvision's float
``resized_crop(antialias=True)`` it agrees to < 5e-3. ``roi_align`` (box average of bilinear samples) and
``grid_sample`` (no antialias) were not used because neither reproduces the stock filter.

The hook (open_clip_train 3.3.0)
--------------------------------
``train_one_epoch`` only touches ``data['train'].dataloader`` through ``num_batches``, ``num_samples`` and iteration,
then does ``images.to(device=device, dtype=input_dtype, non_blocking=True)``. :class:`DeviceBatches` is an iterable
with those two attributes that yields ``(images, texts)`` already **on the device, normalised, float32**, so that
``.to`` is a no-op (``input_dtype`` is None for fp32/amp/amp_bf16; a cast for pure_bf16/pure_fp16, as upstream).
No upstream function is patched beyond the existing ``open_clip_train.main.get_data`` replacement. It is stable for
the exact 3.3.0 pin: ``main`` (4.x) yields dict batches and would need a different wrapper.

CUDA streams: device work runs on a side stream in a prefetch thread (``prefetch`` batches ahead, overlapping the
training step); the consumer's stream waits on an event and ``record_stream`` keeps the caching allocator from
recycling the tensors early. The side stream is synchronised before each ``decode_jpeg``: torchvision's CUDA decoder
allocates outputs on the caller's stream but writes them from a private stream without waiting on the caller's queued
work (pytorch/vision PR #9606, torchcodec PR #1634); with nothing queued on the caller's stream the hazard is absent.

Storage size: :func:`min_lossless_short_side` (from ``lib.data.resize_spec``) gives the smallest stored short side for which
every crop is at least the output size (no upscaling). For 224-px models with scale 0.4 and ratio 0.9 it is 374 px.
So 384-px storage keeps the crop semantics; rule ``resize_shards`` derives it from the 512-px download when a recipe
sets ``stored_short_side`` (the config check refuses sizes below the minimum). 256-px storage does **not** (small
crops become ~1.4× upscales); the benchmark reports 256-px rates only for comparison
with earlier measurements.
"""

import io
import logging
import math
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from lib.data.resize_spec import min_lossless_short_side  # noqa: F401  (re-exported: tests, perf)

log = logging.getLogger("entitynet.fast_data")

DATA_PATHS = ("stock", "lean", "gpu", "hybrid")
INTERPOLATIONS = ("bicubic", "bilinear")
SAMPLERS = ("torchvision", "timm")  # whose RandomResizedCrop draws the boxes (see draw_box)


# ----------------------------------------------------------------------------------------------------------------
# what the stock transform does


@dataclass(frozen=True)
class CropSpec:
    """The stock training transform reduced to what the fast paths reproduce."""

    size: tuple[int, int]  # output (height, width)
    scale: tuple[float, float]
    ratio: tuple[float, float]
    interpolation: str  # "bicubic" | "bilinear"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sampler: str = "torchvision"  # "torchvision" (torch RNG) | "timm" (Python's random), as the stock transform

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} not supported (use one of {INTERPOLATIONS})")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"box sampler {self.sampler!r} not supported (use one of {SAMPLERS})")
        if not (0 < self.scale[0] <= self.scale[1]) or not (0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"bad RandomResizedCrop range scale={self.scale} ratio={self.ratio}")


def _interp_name(value: Any) -> str:
    name = getattr(value, "value", value)  # torchvision InterpolationMode -> "bicubic"
    if not isinstance(name, str):  # PIL resample int
        from PIL import Image

        name = {Image.Resampling.BICUBIC: "bicubic", Image.Resampling.BILINEAR: "bilinear"}.get(name, str(name))
    return name.lower()


def crop_spec_from_transform(transform: Any) -> CropSpec:
    """Read size/scale/ratio/interpolation/mean/std from open_clip's training transform (timm or torchvision).

    Accepts a ``Compose`` of exactly: one RandomResizedCrop (timm ``RandomResizedCropAndInterpolation`` or
    torchvision ``RandomResizedCrop``), conversions (``MaybeConvertMode``, ``ToTensor``, ``MaybeToTensor``) and one
    ``Normalize``. Raises ValueError naming any other transform, since the fast paths would silently skip it.
    """
    steps = list(getattr(transform, "transforms", [transform]))
    rrc = norm = None
    for t in steps:
        name = type(t).__name__
        if name in ("RandomResizedCropAndInterpolation", "RandomResizedCrop"):
            rrc = t
        elif name == "Normalize":
            norm = t
        elif name in ("MaybeConvertMode", "ToTensor", "MaybeToTensor", "PILToTensor", "ToImage"):
            continue
        else:
            raise ValueError(f"training transform has {name} ({t!r}), which the lean/gpu data paths do not "
                             "reproduce; use --entitynet-data-path stock")
    if rrc is None or norm is None:
        raise ValueError(f"training transform lacks RandomResizedCrop or Normalize: {transform!r}")
    interp = rrc.interpolation
    if isinstance(interp, (tuple, list)):
        raise ValueError("random interpolation (timm interpolation='random') is not supported by lean/gpu paths")
    size = tuple(int(s) for s in (rrc.size if isinstance(rrc.size, (tuple, list)) else (rrc.size, rrc.size)))
    mean = tuple(float(x) for x in torch.as_tensor(norm.mean).flatten().tolist())
    std = tuple(float(x) for x in torch.as_tensor(norm.std).flatten().tolist())
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"Normalize must have 3 channels, got mean={mean} std={std}")
    sampler = "timm" if type(rrc).__name__ == "RandomResizedCropAndInterpolation" else "torchvision"
    return CropSpec(size=(size[0], size[1]), scale=tuple(map(float, rrc.scale)), ratio=tuple(map(float, rrc.ratio)),
                    interpolation=_interp_name(interp), mean=mean, std=std, sampler=sampler)


def rrc_params(height: int, width: int, scale: Sequence[float], ratio: Sequence[float],
               generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """RandomResizedCrop box ``(top, left, h, w)`` with exactly torchvision's ``RandomResizedCrop.get_params``.

    Area fraction uniform in ``scale``, log aspect uniform in ``log(ratio)``, 10 tries, then the centre crop clamped
    to the ratio range. Same torch RNG calls in the same order, so with the same seed it returns the same boxes as
    torchvision (tested). In dataloader workers torch's RNG is seeded per worker by the DataLoader.
    """
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator)).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = torch.randint(0, height - h + 1, size=(1,), generator=generator).item()
            j = torch.randint(0, width - w + 1, size=(1,), generator=generator).item()
            return int(i), int(j), h, w
    return _centre_box(height, width, ratio)


def timm_rrc_params(height: int, width: int, scale: Sequence[float], ratio: Sequence[float],
                    rng: Any = random) -> tuple[int, int, int, int]:
    """The box of timm's ``RandomResizedCropAndInterpolation.get_params`` (timm 1.0.31; open_clip's ``use_timm``
    transform), draw for draw: the same calls of Python's ``random`` (``rng``; the module by default, which the
    DataLoader seeds per worker) in the same order, so with the same seed it returns the stock path's boxes."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = rng.uniform(*scale) * area
        aspect_ratio = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if w <= width and h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    return _centre_box(height, width, ratio)


def _centre_box(height: int, width: int, ratio: Sequence[float]) -> tuple[int, int, int, int]:
    """Both samplers' fallback after 10 rejected draws: the centre crop clamped to the ratio range."""
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def draw_box(spec: CropSpec, height: int, width: int) -> tuple[int, int, int, int]:
    """One crop box ``(top, left, h, w)`` drawn the way the stock transform of ``spec`` draws it (``spec.sampler``),
    so a fast path and the stock path that share a worker seed crop the same boxes."""
    if spec.sampler == "timm":
        return timm_rrc_params(height, width, spec.scale, spec.ratio)
    return rrc_params(height, width, spec.scale, spec.ratio)


# ----------------------------------------------------------------------------------------------------------------
# the batched crop+resize kernel


def _filter(x: torch.Tensor, interpolation: str) -> torch.Tensor:
    ax = x.abs()
    if interpolation == "bilinear":
        return (1.0 - ax).clamp_min(0.0)
    a = -0.5  # PIL / torchvision antialias bicubic
    inner = ((a + 2.0) * ax - (a + 3.0)) * ax * ax + 1.0
    outer = (((ax - 5.0) * ax + 8.0) * ax - 4.0) * a
    return torch.where(ax < 1.0, inner, torch.where(ax < 2.0, outer, torch.zeros_like(ax)))


def resize_matrices(in_lengths: torch.Tensor, out_len: int, max_len: int, interpolation: str = "bicubic",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``W[n, out_len, max_len]``: row ``o`` resamples a length-``in_lengths[n]`` signal PIL-style (antialiased).

    Columns ``≥ in_lengths[n]`` are zero; each row sums to 1. The taps (PIL's window ``[xmin, xmax)``: the filter's
    open support clipped to ``[0, L)``) are computed in float64 as a band ``[n, out_len, taps]`` and scattered into the
    dense matrix of ``dtype`` on ``in_lengths.device``, so no dense float64 temporaries are made.
    """
    support = 2.0 if interpolation == "bicubic" else 1.0
    L = in_lengths.to(torch.float64).view(-1, 1, 1)
    scale = L / out_len
    fscale = scale.clamp_min(1.0)
    center = (torch.arange(out_len, dtype=torch.float64, device=L.device).view(1, -1, 1) + 0.5) * scale
    xmin = torch.floor(center - support * fscale + 0.5).clamp_min(0.0)
    taps = int(math.ceil(2.0 * support * float(fscale.max()))) + 2
    k = xmin + torch.arange(taps, dtype=torch.float64, device=L.device).view(1, 1, -1)
    w = _filter((k - center + 0.5) / fscale, interpolation)
    w = torch.where((k < L) & ((k + 0.5 - center).abs() < support * fscale), w, torch.zeros_like(w))
    w = w / w.sum(-1, keepdim=True)
    dense = torch.zeros((L.shape[0], out_len, max_len), dtype=dtype, device=L.device)
    # clamped out-of-range taps carry weight 0, so scatter_add leaves the real taps exact
    return dense.scatter_add_(2, k.clamp(max=max_len - 1).long(), w.to(dtype))


def resized_crop_batch(images: Sequence[torch.Tensor], boxes: torch.Tensor, size: tuple[int, int],
                       interpolation: str = "bicubic", compute_dtype: torch.dtype | None = None,
                       round_output: bool = True, max_chunk_bytes: int = 1 << 30) -> torch.Tensor:
    """Crop ``images[n][:, top:top+h, left:left+w]`` and resize to ``size`` for the whole batch at once.

    ``images``: CHW uint8 tensors (any sizes, same device); ``boxes``: ``[n, 4]`` int ``(top, left, h, w)``.
    Returns float32 ``[n, C, size_h, size_w]`` on the images' device, in 0..255 (rounded and clipped like PIL's
    uint8 output when ``round_output``). ``compute_dtype``: float16 on CUDA (0..255 are exact; weights to ~5e-4),
    float32 on CPU by default. Batches are split so that the staged crops take ≤ ``max_chunk_bytes``.
    """
    n = len(images)
    if n == 0:
        raise ValueError("empty image batch")
    boxes = torch.as_tensor(boxes, dtype=torch.int64).cpu()
    if boxes.shape != (n, 4):
        raise ValueError(f"boxes must be [{n}, 4] (top, left, h, w), got {tuple(boxes.shape)}")
    device = images[0].device
    if compute_dtype is None:
        compute_dtype = torch.float16 if device.type == "cuda" else torch.float32
    channels = images[0].shape[0]
    for k, (img, (t, l, h, w)) in enumerate(zip(images, boxes.tolist())):
        if img.dim() != 3 or img.shape[0] != channels or img.dtype != torch.uint8:
            raise ValueError(f"image {k}: expected uint8 [{channels}, H, W], got {img.dtype} {tuple(img.shape)}")
        if h <= 0 or w <= 0 or t < 0 or l < 0 or t + h > img.shape[1] or l + w > img.shape[2]:
            raise ValueError(f"image {k}: box {(t, l, h, w)} outside image of size {tuple(img.shape[1:])}")
    out = torch.empty((n, channels, size[0], size[1]), dtype=torch.float32, device=device)
    elem = torch.tensor([], dtype=compute_dtype).element_size()
    start = 0
    while start < n:  # greedy chunks bounded by staged bytes
        stop, hmax, wmax = start, 0, 0
        while stop < n:
            h2, w2 = max(hmax, int(boxes[stop, 2])), max(wmax, int(boxes[stop, 3]))
            if stop > start and (stop - start + 1) * channels * h2 * w2 * elem > max_chunk_bytes:
                break
            hmax, wmax, stop = h2, w2, stop + 1
        b = boxes[start:stop]
        m = stop - start
        # staging, layout [m, Hc, C, Wc] so both passes are plain bmm (no broadcast copies)
        x = torch.zeros((m, hmax, channels, wmax), dtype=compute_dtype, device=device)
        for r, (img, (t, l, h, w)) in enumerate(zip(images[start:stop], b.tolist())):
            x[r, :h, :, :w].copy_(img[:, t:t + h, l:l + w].permute(1, 0, 2))  # one strided copy+cast per image
        hs, ws = b[:, 2].to(device), b[:, 3].to(device)
        wy = resize_matrices(hs, size[0], hmax, interpolation, compute_dtype)  # [m, Sh, Hc]
        wx = resize_matrices(ws, size[1], wmax, interpolation, compute_dtype)  # [m, Sw, Wc]
        y = torch.bmm(wy, x.view(m, hmax, channels * wmax))  # [m, Sh, C*Wc]
        y = torch.bmm(y.view(m, size[0] * channels, wmax), wx.transpose(1, 2))  # [m, Sh*C, Sw]
        out[start:stop] = y.view(m, size[0], channels, size[1]).permute(0, 2, 1, 3)
        start = stop
    if round_output:
        out.round_().clamp_(0.0, 255.0)
    return out


def normalize_batch(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``ToTensor`` + ``Normalize`` on a batch of 0..255 images (uint8 or float): ``(x/255 - mean) / std``, float32.

    Same operations in the same order as torchvision (``div(255)``, ``sub_(mean)``, ``div_(std)``).
    """
    x = images.to(torch.float32).div(255)
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


# ----------------------------------------------------------------------------------------------------------------
# worker-side steps (picklable)


def _open(data: bytes):
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    return img


def _pil_resized_crop(img, box: tuple[int, int, int, int], size: tuple[int, int], interpolation: str,
                      draft_scale: int = 1):
    """PIL crop+resize of ``box`` (top, left, h, w in original pixels) on an image decoded at 1/``draft_scale``."""
    from PIL import Image

    t, l, h, w = box
    resample = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
    if draft_scale == 1:  # identical to torchvision F.resized_crop on PIL (crop, then resize): the stock path
        return img.crop((l, t, l + w, t + h)).resize((size[1], size[0]), resample)
    s = float(draft_scale)
    return img.resize((size[1], size[0]), resample, box=(l / s, t / s, (l + w) / s, (t + h) / s))


def draft_scale_for(box_hw: tuple[int, int], size: tuple[int, int]) -> int:
    """Largest JPEG DCT reduction (1, 2, 4, 8) that keeps the crop ≥ the output size in both dimensions."""
    factor = min(box_hw[0] / size[0], box_hw[1] / size[1])
    for s in (8, 4, 2):
        if factor >= s:
            return s
    return 1


def _to_chw_uint8(img) -> torch.Tensor:
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class LeanImage:
    """Worker step for ``lean``: JPEG bytes → uint8 ``[3, H, W]`` crop resized to the model size."""

    def __init__(self, spec: CropSpec, use_draft: bool = True):
        self.spec = spec
        self.use_draft = use_draft

    def __call__(self, data: bytes) -> torch.Tensor:
        img = _open(data)
        width, height = img.size
        box = draw_box(self.spec, height, width)
        s = 1
        if self.use_draft and img.format == "JPEG" and img.mode in ("RGB", "L"):
            s = draft_scale_for(box[2:], self.spec.size)
            if s > 1:
                img.draft(img.mode, (width // s, height // s))
                if img.size != ((width + s - 1) // s, (height + s - 1) // s):  # pragma: no cover - PIL contract
                    raise RuntimeError(f"PIL draft gave {img.size} for {(width, height)} at 1/{s}")
        img = img.convert("RGB")
        return _to_chw_uint8(_pil_resized_crop(img, box, self.spec.size, self.spec.interpolation, s))


class GpuImage:
    """Worker step for ``gpu``: bytes → ``("jpeg", uint8 bytes, box)`` or, for non-JPEG/CMYK, ``("pre", crop)``.

    Only the JPEG header is parsed (size, format, mode); the box is drawn with :func:`draw_box` here, in the
    worker, so the device needs no per-image Python work but a copy.
    """

    def __init__(self, spec: CropSpec):
        self.spec = spec
        self._lean = LeanImage(spec, use_draft=False)

    def __call__(self, data: bytes) -> tuple:
        img = _open(data)
        if img.format == "JPEG" and img.mode in ("RGB", "L"):
            width, height = img.size
            box = draw_box(self.spec, height, width)
            return ("jpeg", np.frombuffer(data, dtype=np.uint8), box)
        return ("pre", self._lean(data))


class CpuShare:
    """The share of JPEG samples that the CPU workers crop themselves in the ``hybrid`` path (the rest go to nvJPEG).

    State lives in shared-memory tensors, so dataloader workers (forked, or spawned: torch's reductions pass shared
    tensors to spawned processes) read the share the main process sets, and count the samples they prepare
    (:meth:`count`, one slot per worker, so no two processes write the same slot).

    With ``adaptive``, the main process calls :meth:`observe` once per consumed batch (seconds waited on the loader,
    seconds of the whole cycle). Every ``window`` batches it looks at the **loader's backlog**, the batches prepared
    by the workers but not yet consumed (samples counted minus batches consumed × ``batch_size``), and at the wait:

    - the training loop waited > ``wait_high`` of the window, or the backlog is below ``low_mark`` × its largest
      value seen and still falling → the workers cannot keep up: share − ``step_down``;
    - the backlog is at least ``high_mark`` × its largest value seen (the loader's prefetch buffer is full, so the
      workers idle) → they have spare time: share + ``step_up``;
    - otherwise the share holds.

    A change of the share changes the workers' speed at once, but the backlog absorbs it for a while; reading the
    backlog rather than only the waits is what stops the share from creeping up while the buffer silently drains
    and then starving the GPU. The share settles where the workers are about saturated, which leaves the GPU the
    least decode work without making it wait. Without ``batch_size`` only the waits are used (``wait_low`` for up).
    """

    SLOTS = 256

    def __init__(self, initial: float = 0.5, adaptive: bool = True, batch_size: int | None = None, window: int = 8,
                 wait_high: float = 0.02, wait_low: float = 0.005, high_mark: float = 0.75, low_mark: float = 0.35,
                 step_up: float = 0.02, step_down: float = 0.05):
        if not 0.0 <= float(initial) <= 1.0:
            raise ValueError(f"cpu share must be within 0..1, got {initial!r}")
        self._value = torch.full((1,), float(initial), dtype=torch.float64).share_memory_()
        self._prepared = torch.zeros(self.SLOTS, dtype=torch.int64).share_memory_()
        self.adaptive = bool(adaptive)
        self.batch_size = int(batch_size) if batch_size else None
        self.window, self.wait_high, self.wait_low = int(window), float(wait_high), float(wait_low)
        self.high_mark, self.low_mark = float(high_mark), float(low_mark)
        self.step_up, self.step_down = float(step_up), float(step_down)
        self._wait = self._total = 0.0
        self._count = self._consumed = 0
        self._backlog_prev: float | None = None
        self.backlog_max = 0.0
        self._logged = float(initial)
        self.history: list[tuple[float, float | None, float]] = []  # per window: (wait share, backlog, share after)
        self._epoch = [0, 0.0, 0.0, 0.0]  # batches, sum of shares, seconds waited, seconds in all

    @property
    def value(self) -> float:
        return float(self._value[0])

    def set(self, value: float) -> None:
        self._value[0] = min(1.0, max(0.0, float(value)))

    def count(self, n: int = 1) -> None:
        """Worker side: ``n`` more samples prepared (slot = the dataloader worker id)."""
        import torch.utils.data as tud

        info = tud.get_worker_info()
        self._prepared[(info.id if info is not None else 0) % len(self._prepared)] += n

    def backlog(self) -> float | None:
        """Batches prepared by the workers and not yet consumed (None without ``batch_size``)."""
        if self.batch_size is None:
            return None
        return (int(self._prepared.sum()) - self._consumed * self.batch_size) / self.batch_size

    def observe(self, wait_s: float, total_s: float) -> None:
        """One consumed batch: seconds spent waiting on the loader, seconds of the whole cycle (wait included)."""
        self._consumed += 1
        ep = self._epoch
        ep[0] += 1
        ep[1] += self.value
        ep[2] += max(0.0, wait_s)
        ep[3] += max(wait_s, total_s)
        if not self.adaptive:
            return
        self._wait += max(0.0, wait_s)
        self._total += max(wait_s, total_s, 0.0)
        self._count += 1
        if self._count < self.window:
            return
        frac = self._wait / self._total if self._total > 0 else 0.0
        backlog = self.backlog()
        if backlog is None:
            if frac > self.wait_high:
                self.set(self.value - self.step_down)
            elif frac < self.wait_low:
                self.set(self.value + self.step_up)
        else:
            self.backlog_max = max(self.backlog_max, backlog)
            falling = self._backlog_prev is not None and backlog < self._backlog_prev
            if frac > self.wait_high or (falling and backlog < self.low_mark * self.backlog_max):
                self.set(self.value - self.step_down)
            elif self.backlog_max >= 1 and backlog >= self.high_mark * self.backlog_max:
                self.set(self.value + self.step_up)
            self._backlog_prev = backlog
        self.history.append((frac, backlog, self.value))
        del self.history[:-1000]
        if abs(self.value - self._logged) >= 0.1 - 1e-9:
            log.info("hybrid data path: cpu share now %.2f (loader wait %.1f%% of the last %d batches, backlog %s)",
                     self.value, 100 * frac, self._count, "?" if backlog is None else f"{backlog:.1f} batches")
            self._logged = self.value
        self._wait = self._total = 0.0
        self._count = 0

    def epoch_end(self) -> dict:
        """Log and return the epoch's figures (the benchmark reads this line), then start the next epoch's."""
        n, share_sum, waited, total = self._epoch
        out = {"cpu_share": self.value, "mean_cpu_share": share_sum / n if n else self.value, "batches": n,
               "loader_wait_share": waited / total if total > 0 else 0.0}
        log.info("hybrid data path: cpu share %.3f at the end of the epoch (mean %.3f over %d batches, loader "
                 "wait %.1f%%)", out["cpu_share"], out["mean_cpu_share"], n, 100 * out["loader_wait_share"])
        self._epoch = [0, 0.0, 0.0, 0.0]
        return out


class HybridImage:
    """Worker step for ``hybrid``: like :class:`GpuImage`, but a :class:`CpuShare` of the JPEGs is cropped here
    with the ``lean`` step (``("pre", uint8 crop)``), the rest is sent as bytes for nvJPEG.

    Which samples go to the CPU is decided by error diffusion (an accumulator of the share), so over any run of
    samples the CPU takes the share to within one sample, whatever the order. The box is drawn by the same
    :func:`draw_box` call in both branches, so the augmentation does not depend on where a sample is decoded.
    Every call counts one prepared sample (the controller's backlog).
    """

    def __init__(self, spec: CropSpec, share: CpuShare):
        self.spec = spec
        self.share = share
        self._lean = LeanImage(spec)
        self._acc = 0.0

    def __call__(self, data: bytes) -> tuple:
        img = _open(data)
        if img.format == "JPEG" and img.mode in ("RGB", "L"):
            self._acc += self.share.value
            if self._acc >= 1.0:
                self._acc -= 1.0
                item = ("pre", self._lean(data))
            else:
                width, height = img.size
                box = draw_box(self.spec, height, width)
                item = ("jpeg", np.frombuffer(data, dtype=np.uint8), box)
        else:
            item = ("pre", self._lean(data))
        self.share.count()
        return item


def collate_gpu(samples: Sequence[tuple]) -> tuple:
    """Batch of ``(image_item, text)`` → one packed tuple (few tensors ⇒ cheap worker→main IPC).

    ``(jpeg_buf uint8[N], jpeg_len int64[j], jpeg_idx int64[j], boxes int64[j,4], pre uint8[p,3,S,S],
    pre_idx int64[p], texts [n, ctx])``.
    """
    jpegs, lens, jidx, boxes, pre, pidx = [], [], [], [], [], []
    for k, (item, _text) in enumerate(samples):
        if item[0] == "jpeg":
            jpegs.append(item[1])
            lens.append(len(item[1]))
            jidx.append(k)
            boxes.append(item[2])
        else:
            pre.append(item[1])
            pidx.append(k)
    texts = torch.stack([torch.as_tensor(t) for _, t in samples])
    buf = torch.from_numpy(np.concatenate(jpegs)) if jpegs else torch.empty(0, dtype=torch.uint8)
    pre_t = torch.stack(pre) if pre else torch.empty(0, dtype=torch.uint8)
    return (buf, torch.tensor(lens, dtype=torch.int64), torch.tensor(jidx, dtype=torch.int64),
            torch.tensor(boxes, dtype=torch.int64).view(-1, 4), pre_t, torch.tensor(pidx, dtype=torch.int64), texts)


# ----------------------------------------------------------------------------------------------------------------
# device-side steps


def decode_jpegs(encoded: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """Batched JPEG decode to RGB uint8 CHW on ``device`` (nvJPEG on CUDA); None for images nothing can decode.

    A failing batched call falls back to per-image device decode, then CPU decode (logged).
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    dev = str(device)
    try:
        return list(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=dev))
    except RuntimeError as exc:
        log.warning("batched decode_jpeg on %s failed (%s); decoding one by one", dev, exc)
    out: list[torch.Tensor | None] = []
    for k, data in enumerate(encoded):
        try:
            out.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=dev))
        except RuntimeError:
            try:
                out.append(decode_jpeg(data, mode=ImageReadMode.RGB).to(device))
            except RuntimeError as exc:
                log.warning("image %d of the batch cannot be decoded (%s); replaced by another pair", k, exc)
                out.append(None)
    return out


class LeanDevice:
    """Device step for ``lean`` batches ``(uint8 [n,3,S,S], texts)``."""

    def __init__(self, spec: CropSpec):
        self.spec = spec

    def __call__(self, batch: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        images, texts = batch
        if device.type == "cuda":
            images, texts = images.pin_memory(), texts.pin_memory()
        images = images.to(device, non_blocking=True)
        texts = texts.to(device, non_blocking=True)
        return normalize_batch(images, self.spec.mean, self.spec.std), texts


class GpuDevice:
    """Device step for ``gpu`` batches (:func:`collate_gpu`): decode, batched crop+resize, normalise."""

    def __init__(self, spec: CropSpec, compute_dtype: torch.dtype | None = None):
        self.spec = spec
        self.compute_dtype = compute_dtype
        self.replaced = 0  # undecodable images replaced by another pair of the batch (logged)

    def __call__(self, batch: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        buf, lens, jidx, boxes, pre, pidx, texts = batch
        n = len(texts)
        images = torch.empty((n, 3, *self.spec.size), dtype=torch.float32, device=device)
        filled = torch.zeros(n, dtype=torch.bool)
        if len(jidx):
            encoded = list(torch.split(buf, lens.tolist()))
            if device.type == "cuda":
                torch.cuda.current_stream(device).synchronize()  # vision#9606: nothing queued on the caller stream
            decoded = decode_jpegs(encoded, device)
            ok = [k for k, d in enumerate(decoded) if d is not None]
            if ok:
                crops = resized_crop_batch([decoded[k] for k in ok], boxes[ok], self.spec.size,
                                           self.spec.interpolation, self.compute_dtype)
                dest = jidx[ok]
                images[dest.to(device)] = crops
                filled[dest] = True
        if len(pidx):
            images[pidx.to(device)] = pre.to(device, non_blocking=True).to(torch.float32)
            filled[pidx] = True
        texts = texts.to(device, non_blocking=True)
        if not bool(filled.all()):
            missing = (~filled).nonzero().flatten()
            good = filled.nonzero().flatten()
            if len(good) == 0:
                raise RuntimeError("no image of the batch could be decoded")
            src = good[torch.arange(len(missing)) % len(good)]
            images[missing.to(device)] = images[src.to(device)]
            texts[missing.to(device)] = texts[src.to(device)]
            self.replaced += len(missing)
        return normalize_batch(images, self.spec.mean, self.spec.std), texts


# ----------------------------------------------------------------------------------------------------------------
# the hook: an iterable the upstream train loop consumes like its dataloader


_END = object()


class DeviceBatches:
    """Wrap a (Web)DataLoader so iteration yields ``prepare(batch, device)``: device-resident, normalised batches.

    Keeps ``num_batches``/``num_samples`` (all ``open_clip_train`` 3.3.0 reads besides iteration). On CUDA the
    device work runs ``prefetch`` batches ahead in a thread on its own stream; on CPU it runs inline.
    """

    def __init__(self, loader: Iterable, prepare: Callable[[Any, torch.device], tuple], device: str | torch.device,
                 prefetch: int = 2, monitor: Any = None):
        self.loader = loader
        self.prepare = prepare
        self.device = torch.device(device)
        self.prefetch = max(0, int(prefetch))
        # monitor.observe(seconds waited on the loader, seconds of the whole cycle) per batch, monitor.epoch_end()
        self.monitor = monitor
        self.num_batches = getattr(loader, "num_batches", None)
        self.num_samples = getattr(loader, "num_samples", None)

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("wrapped loader has no num_batches")
        return self.num_batches

    def _timed(self, it):
        """Iterate ``it``, reporting per batch the time blocked in ``next`` and the time since the previous batch
        (``(0, 0)`` for the first batch)."""
        last = None
        while True:
            start = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            got = time.perf_counter()
            if last is None:  # the first wait is the workers' start-up, not a steady-state signal: counted, not timed
                self.monitor.observe(0.0, 0.0)
            else:
                self.monitor.observe(got - start, got - last)
            last = got
            yield batch

    def __iter__(self):
        it = iter(self.loader)  # worker processes start here, in the caller's thread
        if self.monitor is not None:
            it = self._timed(it)
        if self.device.type != "cuda":
            for batch in it:
                yield self.prepare(batch, self.device)
        else:
            stream = torch.cuda.Stream(self.device)
            if self.prefetch == 0:
                for batch in it:
                    yield self._consume(self._produce(batch, stream))
            else:
                yield from self._threaded(it, stream)
        if self.monitor is not None:
            self.monitor.epoch_end()

    def _produce(self, batch, stream):
        with torch.cuda.stream(stream):
            out = self.prepare(batch, self.device)
            event = torch.cuda.Event()
            event.record(stream)
        return out, event

    def _consume(self, item):
        out, event = item
        current = torch.cuda.current_stream(self.device)
        current.wait_event(event)
        for t in out:
            t.record_stream(current)
        return out

    def _threaded(self, it, stream):
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def producer():
            try:
                torch.cuda.set_device(self.device)
                for batch in it:
                    if stop.is_set() or not put(self._produce(batch, stream)):
                        return
                put(_END)
            except BaseException as exc:  # surfaced in the consumer
                put(exc)

        thread = threading.Thread(target=producer, name="entitynet-device-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield self._consume(item)
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    q.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()


# ----------------------------------------------------------------------------------------------------------------
# synthetic shards (tests and perf/bench_train_throughput.py)


def synthetic_image(height: int, width: int, rng: np.random.Generator):
    """A photo-like RGB PIL image: smooth multi-scale colour fields plus fine texture (JPEG q95 ≈ 2 bits/pixel)."""
    from PIL import Image

    acc = np.zeros((height, width, 3), dtype=np.float32)
    for cell, amp in ((128, 90.0), (32, 45.0), (8, 22.0), (2, 9.0)):
        gh, gw = max(2, height // cell + 2), max(2, width // cell + 2)
        grid = rng.normal(0.0, 1.0, (gh, gw, 3)).astype(np.float32)
        layer = np.stack([np.asarray(Image.fromarray(grid[..., c], mode="F").resize((width, height),
                                                                                    Image.Resampling.BICUBIC))
                          for c in range(3)], axis=-1)
        acc += amp * layer
    acc += 128.0
    return Image.fromarray(np.clip(acc, 0, 255).astype(np.uint8), mode="RGB")


def write_synthetic_shard(path, shard_index: int, per_shard: int, short_side: int, seed: int = 0,
                          n_queries: int = 20, quality: int = 95, max_aspect: float = 1.5) -> list[int]:
    """One webdataset shard of synthetic JPEGs (see :func:`write_synthetic_shards`); returns the JPEG sizes."""
    import json
    import tarfile

    from _helpers import atomic_path

    rng = np.random.default_rng([seed, shard_index])
    nbytes = []
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w") as tar:
            for k in range(per_shard):
                long_side = int(round(short_side * rng.uniform(1.0, max_aspect)))
                h, w = (short_side, long_side) if rng.random() < 0.7 else (long_side, short_side)
                buf = io.BytesIO()
                synthetic_image(h, w, rng).save(buf, format="JPEG", quality=quality)
                q = [f"synth-noun-{int(rng.integers(n_queries))}"]
                alts = [f"synthetic photo {shard_index}-{k}"] if rng.random() < 0.8 else []
                key = f"{shard_index:05d}{k:06d}"
                meta = {"uid": key, "url": f"http://synthetic/{shard_index}/{k}.jpg", "query_ids": q,
                        "alt_texts": alts, "qids": [], "is_living": False, "licence": None}
                for ext, payload in (("jpg", buf.getvalue()), ("txt", (alts[0] if alts else q[0]).encode()),
                                     ("json", json.dumps(meta).encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
                nbytes.append(len(buf.getvalue()))
    return nbytes


def _write_shard_star(a):
    return write_synthetic_shard(*a)


def write_synthetic_shards(out_dir, n_shards: int, per_shard: int, short_side: int, seed: int = 0,
                           n_queries: int = 20, quality: int = 95, max_aspect: float = 1.5,
                           processes: int = 1) -> dict:
    """Write ``{00000..}.tar`` webdataset shards of synthetic JPEGs (short side ``short_side``, random orientation and
    aspect in [1, ``max_aspect``], JPEG ``quality``) with ``.txt`` and ``.json`` (``uid, url, query_ids, alt_texts,
    qids, is_living, licence``: the shard contract), plus ``sizes.json`` and ``text_candidates.parquet`` (text-mix
    input for the synthetic ``query_ids``). Returns ``{"spec", "num_samples", "candidates", "mean_jpeg_bytes"}``.
    Each file is written atomically; ``processes > 1`` writes shards in parallel.
    """
    import json
    from pathlib import Path

    import pandas as pd
    from lib.train import text_sampler

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out / f"{s:05d}.tar", s, per_shard, short_side, seed, n_queries, quality, max_aspect)
            for s in range(n_shards)]
    if processes > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(processes, n_shards)) as pool:
            sizes = pool.map(_write_shard_star, jobs)
    else:
        sizes = [_write_shard_star(j) for j in jobs]
    from _helpers import write_json

    write_json({f"{s:05d}.tar": per_shard for s in range(n_shards)}, out / "sizes.json")
    cand = pd.DataFrame({"query_id": [f"synth-noun-{q}" for q in range(n_queries)],
                         "texts": [[f"a photo of thing {q}", f"thing {q}", f"object number {q}"]
                                   for q in range(n_queries)],
                         "weights": [[0.5, 0.3, 0.2]] * n_queries})
    text_sampler.save_candidates(cand, out / "text_candidates.parquet")
    spec = str(out / ("00000.tar" if n_shards == 1 else f"{{00000..{n_shards - 1:05d}}}.tar"))
    return {"spec": spec, "num_samples": n_shards * per_shard, "candidates": str(out / "text_candidates.parquet"),
            "mean_jpeg_bytes": float(np.mean([b for sz in sizes for b in sz]))}
