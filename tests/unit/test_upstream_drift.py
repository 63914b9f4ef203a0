"""The pinned open_clip_train functions the training wrapper builds on or copies, unchanged since we checked them.

``scripts/lib/train/train_openclip.py`` takes upstream's training split (``get_wds_dataset``) and replaces the stages
after ``tarfile_to_samples_nothrow``; its sample filter is a copy of upstream's ``filter_no_caption_or_no_image``
generalised to the text key; ``get_data`` builds everything else when the train split is blanked; and the fast data
paths' hook (``lib/train/device_batches.py``) relies on ``train_one_epoch`` touching the loader only through
``num_batches``, ``num_samples`` and iteration. When a new pin changes any of them, the hash below fails with what to
re-check; once re-checked (and our code adapted), record the new hash.
"""

import hashlib
import inspect
import math
from importlib.metadata import version
from types import SimpleNamespace

import pytest

from lib.train import synthetic_shards
from lib.train import train_openclip as to

PIN = "3.3.0"
#: "module:function": (sha256 of its source, first 16 hex digits, recorded at PIN; what to re-check when it changes)
RECORDED = {
    "open_clip_train.data:get_wds_dataset": (
        "fed9596654e3cd59", "train_openclip.upstream_train_loader (the shard stages we keep up to "
        "tarfile_to_samples_nothrow, the epoch arithmetic and WebLoader we reuse) and _sample_stages (the sample "
        "stages we put in place of upstream's)"),
    "open_clip_train.data:filter_no_caption_or_no_image": (
        "b293183556b19109", "sample_stages.HasTextAndImage (our copy, with the text key as a parameter)"),
    "open_clip_train.data:get_data": (
        "00efd7c83c9bb8fe", "train_openclip.make_get_data (upstream builds every split but ours when "
        "args.train_data is None)"),
    "open_clip_train.train:train_one_epoch": (
        "37c2381ee38602e1", "device_batches.DeviceBatches (the loader is read only through num_batches, "
        "num_samples and iteration; images.to(device, dtype) is a no-op for device-resident batches)"),
}


def _source_hash(qualname: str) -> str:
    import importlib

    module, name = qualname.split(":")
    return hashlib.sha256(inspect.getsource(getattr(importlib.import_module(module), name)).encode()).hexdigest()[:16]


@pytest.mark.parametrize("qualname", sorted(RECORDED))
def test_upstream_pieces_we_build_on_are_unchanged(qualname):
    recorded, recheck = RECORDED[qualname]
    got = _source_hash(qualname)
    assert got == recorded, (
        f"{qualname} differs from the one recorded at open_clip_torch {PIN} (installed: "
        f"{version('open_clip_torch')}; source hash {got}, recorded {recorded}). Re-check our code that depends on "
        f"it: {recheck}; then record the new hash in tests/unit/test_upstream_drift.py.")


def _args(spec: str, resampled: bool, workers: int = 1, **kw) -> SimpleNamespace:
    base = dict(train_data=spec, dataset_resampled=resampled, train_num_samples=None,
                train_data_upsampling_factors=None, seed=0, batch_size=8, world_size=1, workers=workers)
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize("resampled", [False, True])
def test_upstream_train_loader_keeps_upstream_shard_stages(tmp_path, resampled):
    from open_clip_train.data import tarfile_to_samples_nothrow

    info = synthetic_shards.write_synthetic_shards(tmp_path, 2, 12, 32, seed=1)  # sizes.json: 24 samples
    args = _args(info["spec"], resampled, workers=2)
    data, dataset, stages = to.upstream_train_loader(args, preprocess_img=None, epoch=3, tokenizer=None)
    assert stages[-1] is tarfile_to_samples_nothrow and len(stages) == (2 if resampled else 5)
    assert data.shared_epoch.get_value() == 3
    worker_batches = math.ceil(math.ceil(24 / 8) / 2)  # upstream's arithmetic: ceil per worker, full batches
    loader = data.dataloader
    assert (loader.num_batches, loader.num_samples) == (worker_batches * 2, worker_batches * 2 * 8)
    assert dataset.nsamples == worker_batches and loader.pipeline[0].dataset is dataset
