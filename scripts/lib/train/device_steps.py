"""Device-side steps of the fast data paths: from a worker batch to normalised float32 images on the device.

``lean`` batches (uint8 crops) are moved and normalised (:class:`LeanDevice`); ``gpu``/``hybrid`` batches are
decoded in one batched call (nvJPEG on CUDA, :func:`decode_jpegs`), cropped and resized by the batched kernel
(:func:`lib.train.crop_kernel.resized_crop_batch`), merged with the worker-cropped images and normalised
(:class:`GpuDevice`).
"""

import logging

import torch

from lib.train.crop_kernel import normalize_batch, resized_crop_batch
from lib.train.crop_spec import CropSpec

log = logging.getLogger("entitynet.fast_data")


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
