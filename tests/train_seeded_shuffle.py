"""Run ``scripts/train_openclip.py`` with webdataset's sample shuffle seeded from the DataLoader worker's seed.

Usage: ``python tests/train_seeded_shuffle.py <train_openclip.py arguments>``.

open_clip_train 3.3.0 (the stock ``.txt`` path) and our wrapper's pipeline shuffle samples with ``wds.shuffle()``
without an rng, and webdataset 0.2 then seeds it from the process id and the clock: two runs with the same
``--seed`` see their samples in different orders (a strict xfail in tests/unit/test_fast_data.py keeps that known).
Everything else in a CPU run is seeded from ``--seed``: the worker seed (the DataLoader draws it from torch's RNG,
which open_clip_train seeds), the shard resampling and the crop boxes derived from it. This launcher gives the
sample shuffle the rng that upstream's ``detshuffle2(seed=-1)`` uses in epoch 0 (``random.Random(worker seed)``), so
a run is a function of ``--seed``, and runs the wrapper unchanged. DataLoader workers are forked and inherit it.
"""
import random
import runpy
import sys
from pathlib import Path

import torch.utils.data as tud
import webdataset
import webdataset.filters as wds_filters

TRAIN = Path(__file__).resolve().parents[1] / "scripts" / "train_openclip.py"
_unseeded_shuffle = wds_filters._shuffle


def seeded_shuffle(data, bufsize=1000, initial=100, rng=None, handler=None):
    """``webdataset.filters._shuffle`` whose default rng is seeded from the worker seed instead of pid + time."""
    if rng is None:
        info = tud.get_worker_info()
        rng = random.Random(info.seed if info is not None else 0)
    return _unseeded_shuffle(data, bufsize, initial, rng, handler)


def main() -> None:
    webdataset.shuffle = wds_filters.shuffle = wds_filters.pipelinefilter(seeded_shuffle)
    sys.argv = [str(TRAIN), *sys.argv[1:]]
    runpy.run_path(str(TRAIN), run_name="__main__")


if __name__ == "__main__":
    main()
