"""The stored short side that keeps the training crops (rule ``resize_shards``, config check of
``models.<name>.stored_short_side``).

Standard library only: ``workflow_config`` imports it when the Snakefile is parsed.
"""

import math
from collections.abc import Sequence

# RandomResizedCrop defaults of the training recipes (scripts/lib/train/launch.py uses the same when `augmentation`
# is absent)
DEFAULT_SCALE = (0.4, 1.0)
DEFAULT_RATIO = (0.9, 1.111)


def min_lossless_short_side(out_size: int, scale: Sequence[float], ratio: Sequence[float]) -> int:
    """Smallest stored short side S such that every RandomResizedCrop crop of any image with short side S is at
    least ``out_size`` px on both sides (the crop is never upscaled).

    The smallest crop side occurs on a square image at the smallest area and the extreme aspect ratio:
    ``side = sqrt(scale_min * S**2 * r)`` for ``r = min(min(ratio), 1 / max(ratio))``; images with a longer long side
    only enlarge the crops. (Rounding of the crop's w/h is ignored: +-0.5 px.) For 224 px, scale 0.4 and ratio
    0.9–1.111 this is 374.
    """
    if out_size < 1:
        raise ValueError(f"out_size must be >= 1, got {out_size}")
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be (min, max) with 0 < min <= max, got {tuple(scale)}")
    if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must be (min, max) with 0 < min <= max, got {tuple(ratio)}")
    r = min(min(ratio), 1.0 / max(ratio))
    return int(math.ceil(out_size / math.sqrt(scale[0] * r)))
