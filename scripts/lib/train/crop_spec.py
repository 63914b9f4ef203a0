"""The stock training transform, reduced to what the fast data paths reproduce (:class:`CropSpec`), and its crop-box
samplers, draw for draw.

:func:`crop_spec_from_transform` reads size, scale, ratio, interpolation, mean and std from open_clip's own training
transform and refuses any step the fast paths would silently skip. The crop boxes are drawn by the stock transform's
own sampler (:func:`draw_box`: timm's ``RandomResizedCropAndInterpolation`` from Python's ``random``, which
open_clip's ``use_timm`` transform and so the product use, or torchvision's from torch's RNG), so a fast path and
the stock path whose workers share a seed crop the same boxes of the same sample sequence.
"""

import math
import random
from dataclasses import dataclass
from typing import Any, Sequence

import torch

INTERPOLATIONS = ("bicubic", "bilinear")
SAMPLERS = ("torchvision", "timm")  # whose RandomResizedCrop draws the boxes (see draw_box)


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
