"""Unit tests of scripts/lib/data/shard_resize.py (rule resize_shards): derived shards at a smaller stored short side
(issue 7)."""
import io
import json
import os
import tarfile

import cv2
import numpy as np
import pytest

from lib.data import shard_resize as rs
from lib.data.resize_spec import min_lossless_short_side
from lib.data.shard_writer import ShardWriter

SIDE = 384


def photo(h: int, w: int, seed: int = 0, channels: int = 3) -> bytes:
    """A photo-like JPEG (smooth gradients, blobs, mild noise) of ``h`` x ``w`` px at q95."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        img[..., c] = 128 + 60 * np.sin(xx / (17 + 7 * c + seed)) * np.cos(yy / (23 + 5 * c))
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(20, 80)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    img = img.clip(0, 255).astype(np.uint8)
    if channels == 1:
        img = img[..., 0]
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return enc.tobytes()


def hw(data: bytes) -> tuple[int, int]:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None
    return img.shape[:2]


# (uid, height, width): landscape, portrait, square, smaller than the target, exactly the target, odd aspect, grey
TRAIN = [("a0", 512, 683), ("a1", 700, 512), ("a2", 512, 512), ("a3", 300, 420), ("a4", 384, 500),
         ("a5", 513, 1031), ("a6", 600, 451)]
VAL = [("v0", 512, 640), ("v1", 250, 250)]
CORRUPT = "a7"


def samples(spec, seed0=0):
    out = {}
    for i, (uid, h, w) in enumerate(spec):
        out[uid] = photo(h, w, seed0 + i, channels=1 if uid == "a6" else 3)
    return out


@pytest.fixture()
def shards(tmp_path):
    """A shards dir as build_shards writes it (ShardWriter: train/ in 2 tars of 4, val/ in 1, sizes.json each)."""
    root = tmp_path / "shards"
    train = samples(TRAIN)
    good = photo(512, 600, 99)
    train[CORRUPT] = good[: len(good) // 3]  # truncated JPEG: unreadable
    val = samples(VAL, 50)
    for split, data, per in (("train", train, 4), ("val", val, 1000)):
        w = ShardWriter(root / split, per)
        for uid, jpg in data.items():
            w.write(uid, jpg, {"uid": uid, "url": f"https://x.org/{uid}.jpg", "query_ids": ["q1"],
                               "alt_texts": [f"alt {uid} ü"], "qids": ["Q1"], "is_living": False, "licence": None},
                    f"a photo of {uid} é")
        w.close()
    return root, {"train": train, "val": val}


def members(tar_path) -> list[tuple[str, bytes]]:
    with tarfile.open(tar_path) as tf:
        return [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()]


def test_min_lossless_short_side():
    assert min_lossless_short_side(224, (0.4, 1.0), (0.9, 1.111)) == 374
    assert min_lossless_short_side(224, (0.4, 1.0), (0.9, 1.111)) > 256  # 256-px storage would upscale crops
    # a full-area square crop needs exactly the output size; a smaller scale needs more
    assert min_lossless_short_side(224, (1.0, 1.0), (1.0, 1.0)) == 224
    assert min_lossless_short_side(224, (0.08, 1.0), (3 / 4, 4 / 3)) > min_lossless_short_side(
        224, (0.4, 1.0), (3 / 4, 4 / 3)) > 374
    with pytest.raises(ValueError, match="scale"):
        min_lossless_short_side(224, (0.0, 1.0), (0.9, 1.1))


def test_resize_jpeg_outcomes_and_shape():
    out, outcome = rs.resize_jpeg(photo(512, 683), SIDE)
    assert outcome == "resized" and hw(out) == (384, round(683 * 384 / 512))
    out, outcome = rs.resize_jpeg(photo(700, 512), SIDE)
    assert outcome == "resized" and hw(out) == (round(700 * 384 / 512), 384)
    small = photo(300, 420)
    assert rs.resize_jpeg(small, SIDE) == (small, "kept")
    exact = photo(384, 500)
    assert rs.resize_jpeg(exact, SIDE) == (exact, "kept")
    for bad in (b"", b"\xff\xd8\xff\xe0not a jpeg", photo(512, 600)[:500]):
        assert rs.resize_jpeg(bad, SIDE) == (bad, "unreadable")
    with pytest.raises(ValueError, match="quality"):
        rs.resize_jpeg(small, SIDE, quality=0)


def test_resize_is_img2dataset_downscale_as_the_download_runs_it():
    """The bytes of img2dataset's resizer with the download's settings (keep_ratio, only if bigger, q95)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from img2dataset.resizer import Resizer

    src = photo(517, 779, 3)
    ours, outcome = rs.resize_jpeg(src, SIDE, quality=95)
    theirs, w, h, ow, oh, err = Resizer(SIDE, "keep_ratio", True, encode_quality=95)(io.BytesIO(src))
    assert outcome == "resized" and err is None and (h, w) == hw(ours) == (SIDE, round(779 * SIDE / 517))
    assert ours == theirs  # same decode, resize and encode: byte-identical


def test_resize_shards_end_to_end(shards, tmp_path):
    root, data = shards
    out = tmp_path / "shards_s384"
    summary = rs.resize_shards(root, out, SIDE, quality=95, processes=1)

    for split in ("train", "val"):
        assert (out / split / "sizes.json").read_bytes() == (root / split / "sizes.json").read_bytes()
        src_tars = sorted(p.name for p in (root / split).glob("*.tar"))
        assert sorted(p.name for p in (out / split).glob("*.tar")) == src_tars
        for name in src_tars:
            a, b = members(root / split / name), members(out / split / name)
            assert [n for n, _ in a] == [n for n, _ in b]  # same members, same order
            for (n, x), (_, y) in zip(a, b):
                if not n.endswith(".jpg"):
                    assert x == y, n  # .txt / .json byte-identical
                    continue
                uid = n[:-4]
                if uid == CORRUPT:
                    assert y == x
                    continue
                (h0, w0), (h1, w1) = hw(x), hw(y)
                if min(h0, w0) <= SIDE:
                    assert y == x, n  # small images untouched
                else:
                    assert min(h1, w1) == SIDE, n
                    assert abs(max(h1, w1) - max(h0, w0) * SIDE / min(h0, w0)) <= 1, n  # aspect within 1 px
                    assert (h1 >= w1) == (h0 >= w0), n  # orientation kept
                    assert len(y) < len(x), n

    tr, va = summary["splits"]["train"], summary["splits"]["val"]
    assert (tr["resized"], tr["kept"], tr["unreadable"], tr["samples"], tr["tars"]) == (5, 2, 1, 8, 2)
    assert (va["resized"], va["kept"], va["unreadable"], va["samples"], va["tars"]) == (1, 1, 0, 2, 1)
    assert tr["unreadable_examples"] == [f"{CORRUPT}.jpg"]
    assert tr["jpeg_bytes_in"] == sum(len(v) for v in data["train"].values())
    assert tr["mean_jpeg_bytes_out"] < tr["mean_jpeg_bytes_in"]
    assert summary["total"]["samples"] == 10 and summary["short_side"] == SIDE and summary["quality"] == 95
    assert json.loads((out / rs.SUMMARY_NAME).read_text()) == json.loads(json.dumps(summary))
    assert not (out / rs.STATE_DIR).exists()
    assert not [p for p in out.rglob(".*")]  # no temp files left


def test_resumable_and_parallel(shards, tmp_path):
    root, _ = shards
    out = tmp_path / "out"
    first = rs.resize_shards(root, out, SIDE, processes=2)
    assert first["total"]["reused_tars"] == 0
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.tar")}
    again = rs.resize_shards(root, out, SIDE, processes=1)  # everything in place: reused, same counts
    assert again["total"]["reused_tars"] == 3
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.tar")} == mtimes
    for k in ("resized", "kept", "unreadable", "samples", "jpeg_bytes_out"):
        assert again["total"][k] == first["total"][k], k
    # a truncated output tar is redone; other settings redo everything
    victim = out / "train" / "00001.tar"
    victim.write_bytes(victim.read_bytes()[:2048])
    third = rs.resize_shards(root, out, SIDE)
    assert third["total"]["reused_tars"] == 2 and third["total"]["jpeg_bytes_out"] == first["total"]["jpeg_bytes_out"]
    assert rs.resize_shards(root, out, 400)["total"]["reused_tars"] == 0


def test_bad_inputs_named(shards, tmp_path):
    root, _ = shards
    with pytest.raises(FileNotFoundError, match="nosuch"):
        rs.resize_shards(tmp_path / "nosuch", tmp_path / "o", SIDE)
    (root / "train" / "sizes.json").write_text(json.dumps({"00000.tar": 4, "00001.tar": 5}))
    with pytest.raises(RuntimeError, match="00001.tar: 4 samples but sizes.json says 5"):
        rs.resize_shards(root, tmp_path / "o2", SIDE)
    (root / "train" / "sizes.json").write_text(json.dumps({"00000.tar": 4}))
    with pytest.raises(ValueError, match="sizes.json"):
        rs.resize_shards(root, tmp_path / "o3", SIDE)
