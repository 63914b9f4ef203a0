"""Worker-side image steps of the fast data paths (picklable; they run in the dataloader workers).

``lean`` (:class:`LeanImage`): PIL header → crop box (:func:`lib.train.crop_spec.draw_box`) → JPEG DCT-domain
downscale (``Image.draft``) only by a factor that keeps the crop at least the output size → PIL crop+resize → uint8
``[3, S, S]``. ``gpu`` (:class:`GpuImage`): header only → crop box; the raw JPEG bytes are packed per batch into one
buffer (:func:`collate_gpu`) for the device decode. ``hybrid`` (:class:`HybridImage`): a
:class:`lib.train.cpu_share.CpuShare` of the JPEGs as ``lean``, the rest as ``gpu``.
"""

import io
from typing import Sequence

import numpy as np
import torch

from lib.train.cpu_share import CpuShare
from lib.train.crop_spec import CropSpec, draw_box


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
