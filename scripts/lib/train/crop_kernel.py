"""The batched crop+resize kernel of the ``gpu``/``hybrid`` data paths, and the device-side normalisation.

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
"""

import math
from typing import Sequence

import torch


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
