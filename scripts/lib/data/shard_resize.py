"""Derive training shards at a smaller stored short side from the downloaded ones (rule ``resize_shards``, opt-in).

Why: training is data-bound on JPEG decode, whose cost scales with the stored pixels. The paper stores images with a
short side of at most 512 px; the training crop is RandomResizedCrop(224, scale 0.4–1.0, ratio 0.9–1.111). Every
crop stays at least 224 px (no upscaling, i.e. the crop semantics are kept) as long as the stored short side is at
least :func:`min_lossless_short_side` (374 px for those settings), so 384-px shards train the same augmentation on
~56 % of the pixels, while 256-px shards would not (small crops become ~1.4x upscales).

How: every ``.jpg`` payload whose short side is larger than ``short_side`` is downscaled exactly as img2dataset
downscaled it at download time (``keep_ratio``: short side exactly ``short_side``, long side
``round(long * short_side / short)``, OpenCV ``INTER_AREA``, JPEG re-encode at the download's quality). Smaller images
and every other member (``.txt``, ``.json``) are copied byte for byte, in the same order, under the same names; an
image OpenCV cannot decode is kept as it is and counted (``unreadable``), never dropped. The split layout of
``build_shards`` (``train/``, ``val/``, each with ``NNNNN.tar`` and ``sizes.json``) is mirrored, and
``resize_summary.json`` records the settings and per-split counts and byte totals.

This module is imported when the Snakefile is parsed (``workflow_config`` uses :func:`min_lossless_short_side`), so
its top level imports the standard library only; OpenCV, NumPy and tqdm are imported where they are used.
"""

import json
import logging
import math
import os
import shutil
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("entitynet.resize_shards")

OUTCOMES = ("resized", "kept", "unreadable")
JPEG_SUFFIXES = (".jpg", ".jpeg")
SUMMARY_NAME = "resize_summary.json"
STATE_DIR = ".resize_state"  # per-tar stats while a run is in progress (removed at the end)
# RandomResizedCrop defaults of the training recipes (scripts/train.py uses the same when `augmentation` is absent)
DEFAULT_SCALE = (0.4, 1.0)
DEFAULT_RATIO = (0.9, 1.111)
MAX_EXAMPLES = 20  # unreadable member names kept per tar in the stats


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


def resized_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    """``(height, width)`` after scaling the short side to ``short_side`` (aspect kept, long side rounded).

    The arithmetic of img2dataset's ``keep_ratio`` mode (albumentations ``SmallestMaxSize``:
    ``max(1, round(dim * short_side / min(h, w)))``), so the short side is exactly ``short_side``.
    """
    s = short_side / min(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def resize_jpeg(data: bytes, short_side: int, quality: int = 95) -> tuple[bytes, str]:
    """Downscale one JPEG so that its short side is ``short_side``; returns ``(bytes, outcome)``.

    ``outcome`` is ``"resized"`` (short side was larger: decoded, resized with OpenCV ``INTER_AREA`` like
    img2dataset's downscale, re-encoded as JPEG at ``quality``), ``"kept"`` (short side already ``<= short_side``:
    the original bytes, untouched) or ``"unreadable"`` (OpenCV cannot decode it: the original bytes, for the caller to
    count and log). Decoding uses ``IMREAD_UNCHANGED`` (no EXIF rotation, grey stays grey) as img2dataset does; an
    alpha channel is composited on white as img2dataset does.
    """
    if short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    import cv2
    import numpy as np

    if not data:
        return data, "unreadable"
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None or img.dtype != np.uint8 or img.ndim not in (2, 3):
        return data, "unreadable"
    if img.ndim == 3 and img.shape[2] == 4:  # img2dataset: alpha matting on a white background
        alpha = img[:, :, 3, np.newaxis]
        img = np.rint((alpha / 255 * img[..., :3] + 255 - alpha).clip(0, 255)).astype(np.uint8)
    h, w = img.shape[:2]
    if min(h, w) <= short_side:
        return data, "kept"
    nh, nw = resized_shape(h, w, short_side)
    out = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    ok, enc = cv2.imencode(".jpg", out, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:  # practically impossible for a uint8 image; keep the original rather than lose the sample
        return data, "unreadable"
    return enc.tobytes(), "resized"


def _empty_stats() -> dict:
    return {"members": 0, "samples": 0, "jpegs": 0, **dict.fromkeys(OUTCOMES, 0), "jpeg_bytes_in": 0,
            "jpeg_bytes_out": 0, "tar_bytes_in": 0, "tar_bytes_out": 0, "unreadable_examples": []}


def _sample_key(name: str) -> str:
    """webdataset's sample key of a member name: the path up to the first dot of the basename."""
    d, _, base = name.rpartition("/")
    return f"{d}/{base.split('.', 1)[0]}" if d else base.split(".", 1)[0]


def _copy_info(m: tarfile.TarInfo, size: int) -> tarfile.TarInfo:
    """A fresh header with the member's name, type, mode, owner and time (no stale PAX size) and ``size``."""
    info = tarfile.TarInfo(m.name)
    info.size = size
    info.mtime, info.mode, info.type, info.linkname = m.mtime, m.mode, m.type, m.linkname
    info.uid, info.gid, info.uname, info.gname = m.uid, m.gid, m.uname, m.gname
    return info


def resize_shard(src_tar: str | os.PathLike, dst_tar: str | os.PathLike, short_side: int,
                 quality: int = 95) -> dict:
    """Stream one webdataset tar into ``dst_tar`` with every JPEG passed through :func:`resize_jpeg`.

    Every member is kept, in the same order and under the same name; only ``.jpg``/``.jpeg`` payloads change, every
    other member is copied byte for byte. The output is written to a temp file next to ``dst_tar`` and renamed onto
    it (never a half tar). Returns ``{"members", "samples", "jpegs", "resized", "kept", "unreadable",
    "jpeg_bytes_in", "jpeg_bytes_out", "tar_bytes_in", "tar_bytes_out", "unreadable_examples"}`` (``samples``:
    distinct webdataset keys; ``unreadable_examples``: up to 20 member names).
    """
    import io

    import cv2

    from _helpers import atomic_path

    cv2.setNumThreads(1)  # one image at a time per process, as img2dataset does
    src, dst = Path(src_tar), Path(dst_tar)
    stats = _empty_stats()
    keys: set[str] = set()
    with atomic_path(dst) as tmp:
        with tarfile.open(src, "r|") as tin, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tout:
            for m in tin:
                stats["members"] += 1
                if not m.isfile():
                    tout.addfile(_copy_info(m, 0))
                    continue
                keys.add(_sample_key(m.name))
                data = tin.extractfile(m).read()
                if m.name.lower().endswith(JPEG_SUFFIXES):
                    out, outcome = resize_jpeg(data, short_side, quality)
                    stats["jpegs"] += 1
                    stats[outcome] += 1
                    stats["jpeg_bytes_in"] += len(data)
                    stats["jpeg_bytes_out"] += len(out)
                    if outcome == "unreadable" and len(stats["unreadable_examples"]) < MAX_EXAMPLES:
                        stats["unreadable_examples"].append(m.name)
                    data = out
                tout.addfile(_copy_info(m, len(data)), io.BytesIO(data))
        stats["tar_bytes_out"] = tmp.stat().st_size
    stats["samples"] = len(keys)
    stats["tar_bytes_in"] = src.stat().st_size
    if stats["unreadable"]:
        log.warning("%s: %d unreadable JPEG(s) kept unchanged, e.g. %s", src, stats["unreadable"],
                    stats["unreadable_examples"][:3])
    return stats


def _resize_job(job: tuple) -> tuple[str, str, dict]:
    """Pool worker: ``(split, name, src, dst, short_side, quality)`` -> ``(split, name, stats)``."""
    split, name, src, dst, short_side, quality = job
    try:
        return split, name, resize_shard(src, dst, short_side, quality)
    except Exception as e:  # the pool re-raises in the parent: name the tar (the cause does not cross processes)
        raise RuntimeError(f"resizing {src} -> {dst} failed: {type(e).__name__}: {e}") from None


def _count_members(tar_path: Path) -> int:
    with tarfile.open(tar_path, "r|") as tf:
        return sum(1 for _ in tf)


def _copy_file(src: Path, dst: Path) -> None:
    from _helpers import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _list_splits(shards_dir: Path) -> dict[str, tuple[dict[str, int], list[Path]]]:
    """``{split: (sizes.json, sorted tars)}`` of a shards dir, checking that the two agree."""
    splits: dict[str, tuple[dict[str, int], list[Path]]] = {}
    for d in sorted(p for p in shards_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        sizes_path = d / "sizes.json"
        tars = sorted(p for p in d.glob("*.tar") if not p.name.startswith("."))
        if not sizes_path.exists():
            if tars:
                raise ValueError(f"{d}: {len(tars)} tar(s) but no sizes.json (not a build_shards split)")
            continue
        sizes = json.loads(sizes_path.read_text())
        if not isinstance(sizes, dict) or sorted(sizes) != [t.name for t in tars]:
            raise ValueError(f"{sizes_path} lists {sorted(sizes) if isinstance(sizes, dict) else sizes!r} but the "
                             f"folder holds {[t.name for t in tars]}")
        splits[d.name] = (sizes, tars)
    if not splits:
        raise ValueError(f"{shards_dir}: no split folder with sizes.json (expected train/, val/ of build_shards)")
    return splits


def _known_stats(out_dir: Path, short_side: int, quality: int) -> dict[tuple[str, str], dict]:
    """Per-tar stats of an earlier run into ``out_dir`` with the same settings (state files, else its summary)."""
    known: dict[tuple[str, str], dict] = {}
    summary = out_dir / SUMMARY_NAME
    if summary.exists():
        try:
            s = json.loads(summary.read_text())
            if s.get("short_side") == short_side and s.get("quality") == quality:
                for split, tars in s.get("shards", {}).items():
                    for name, st in tars.items():
                        known[(split, name)] = st
        except (ValueError, AttributeError):
            log.warning("%s is not readable; every tar is redone", summary)
    state = out_dir / STATE_DIR
    for f in state.glob("*/*.json") if state.is_dir() else []:
        try:
            st = json.loads(f.read_text())
        except ValueError:
            continue
        if st.get("short_side") == short_side and st.get("quality") == quality:
            known[(f.parent.name, f.name[:-len(".json")])] = st["stats"]
    return known


def _reusable(st: dict | None, src: Path, dst: Path) -> bool:
    """An existing output tar is reused when an earlier run's stats match it and its source (sizes, member count)."""
    if st is None or not dst.exists():
        return False
    if st.get("tar_bytes_in") != src.stat().st_size or st.get("tar_bytes_out") != dst.stat().st_size:
        return False
    try:
        return _count_members(dst) == st.get("members")
    except tarfile.TarError:
        return False


def _aggregate(per_tar: dict[str, dict]) -> dict:
    tot = _empty_stats()
    tot["tars"] = len(per_tar)
    for st in per_tar.values():
        for k, v in st.items():
            if k == "unreadable_examples":
                tot[k].extend(v[:MAX_EXAMPLES - len(tot[k])])
            elif k in tot:
                tot[k] += v
    tot["mean_jpeg_bytes_in"] = tot["jpeg_bytes_in"] / tot["jpegs"] if tot["jpegs"] else 0.0
    tot["mean_jpeg_bytes_out"] = tot["jpeg_bytes_out"] / tot["jpegs"] if tot["jpegs"] else 0.0
    tot["bytes_ratio"] = tot["jpeg_bytes_out"] / tot["jpeg_bytes_in"] if tot["jpeg_bytes_in"] else 1.0
    return tot


def resize_shards(shards_dir: str | os.PathLike, out_dir: str | os.PathLike, short_side: int, quality: int = 95,
                  processes: int = 1) -> dict:
    """Mirror a ``build_shards`` output (``<split>/NNNNN.tar`` + ``sizes.json``) into ``out_dir`` with every JPEG's
    short side reduced to ``short_side`` (:func:`resize_shard`); returns the summary written to
    ``out_dir/resize_summary.json``.

    Tars are processed by a pool of ``processes`` (spawned) workers; every other file of a split (``sizes.json``)
    and of the top level is copied. Sample counts are checked against ``sizes.json`` (a mismatch is an error: the
    trainer relies on them). Resumable: a tar already in ``out_dir`` from an earlier call with the same settings
    (recorded per tar in ``out_dir/.resize_state/`` while running, then in the summary) is kept when its size and
    member count still match. Snakemake deletes a ``directory()`` output before rerunning its job, so inside the
    workflow every run starts from scratch.

    Summary: ``short_side``, ``quality``, ``source``, ``processes``, ``seconds``, ``images_per_s`` (JPEGs processed
    in this call per second), ``splits`` (per split: ``tars, members, samples, jpegs, resized, kept, unreadable,
    jpeg_bytes_in/out, mean_jpeg_bytes_in/out, bytes_ratio, tar_bytes_in/out, unreadable_examples, reused_tars``),
    ``total`` (the same over all splits) and ``shards`` (the per-tar stats).
    """
    from _helpers import write_json

    src_root, out = Path(shards_dir), Path(out_dir)
    if not src_root.is_dir():
        raise FileNotFoundError(f"shards dir {src_root} does not exist")
    if short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if out.resolve() == src_root.resolve():
        raise ValueError(f"out_dir {out} is the shards dir itself")
    splits = _list_splits(src_root)
    out.mkdir(parents=True, exist_ok=True)
    for f in src_root.iterdir():  # top-level files (build_shards writes none; mirror whatever is there)
        if f.is_file() and not f.name.startswith(".") and f.name != SUMMARY_NAME:
            _copy_file(f, out / f.name)
    known = _known_stats(out, short_side, quality)
    state = out / STATE_DIR
    per_tar: dict[str, dict[str, dict]] = {s: {} for s in splits}
    reused: dict[str, int] = dict.fromkeys(splits, 0)
    jobs = []
    for split, (sizes, tars) in splits.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        (state / split).mkdir(parents=True, exist_ok=True)
        for f in (src_root / split).iterdir():
            if f.is_file() and not f.name.startswith(".") and not f.name.endswith(".tar"):
                _copy_file(f, out / split / f.name)
        for t in tars:
            st = known.get((split, t.name))
            if _reusable(st, t, out / split / t.name):
                per_tar[split][t.name] = st
                reused[split] += 1
            else:
                jobs.append((split, t.name, str(t), str(out / split / t.name), int(short_side), int(quality)))
    n_images = sum(splits[split][0][name] for split, name, *_ in jobs)
    log.info("resize %s -> %s: short side %d, JPEG q%d, %d tar(s) to do (%d images), %d reused, %d process(es)",
             src_root, out, short_side, quality, len(jobs), n_images, sum(reused.values()), processes)

    from tqdm import tqdm

    t0 = time.perf_counter()
    done_jpegs = 0
    with tqdm(total=n_images, desc=f"resize s{short_side}", unit="img", mininterval=10) as bar:
        def record(split: str, name: str, st: dict) -> None:
            nonlocal done_jpegs
            expected = splits[split][0][name]
            if st["samples"] != expected:
                raise RuntimeError(f"{src_root / split / name}: {st['samples']} samples but sizes.json says "
                                   f"{expected}")
            per_tar[split][name] = st
            done_jpegs += st["jpegs"]
            write_json({"short_side": short_side, "quality": quality, "stats": st}, state / split / f"{name}.json")
            bar.update(expected)

        if processes == 1 or len(jobs) <= 1:
            for job in jobs:
                record(*_resize_job(job))
        else:
            import multiprocessing as mp

            import resize_shards as _self  # workers import the module by name (the Snakemake copy is __main__)

            with mp.get_context("spawn").Pool(min(processes, len(jobs))) as pool:
                for res in pool.imap_unordered(_self._resize_job, jobs):
                    record(*res)
    seconds = time.perf_counter() - t0
    split_summ = {}
    for split in splits:
        agg = _aggregate(per_tar[split])
        agg["reused_tars"] = reused[split]
        split_summ[split] = agg
    total = _aggregate({f"{s}/{n}": st for s, tars in per_tar.items() for n, st in tars.items()})
    total["reused_tars"] = sum(reused.values())
    summary = {"short_side": int(short_side), "quality": int(quality), "source": str(src_root),
               "processes": int(processes), "seconds": round(seconds, 3),
               "images_per_s": round(done_jpegs / seconds, 2) if seconds > 0 and done_jpegs else None,
               "splits": split_summ, "total": total,
               "shards": {s: dict(sorted(t.items())) for s, t in per_tar.items()}}
    write_json(summary, out / SUMMARY_NAME)
    shutil.rmtree(state, ignore_errors=True)
    for split, agg in split_summ.items():
        log.info("%s: %d samples, %d resized, %d kept, %d unreadable; JPEG bytes %.0f -> %.0f per image (x%.3f)",
                 split, agg["samples"], agg["resized"], agg["kept"], agg["unreadable"], agg["mean_jpeg_bytes_in"],
                 agg["mean_jpeg_bytes_out"], agg["bytes_ratio"])
    if total["unreadable"]:
        log.warning("%d unreadable JPEG(s) kept unchanged (as in the source shards), e.g. %s",
                    total["unreadable"], total["unreadable_examples"][:5])
    return summary


def main(snakemake) -> None:
    from _helpers import configure_logging

    configure_logging(snakemake)
    resize_shards(snakemake.input.shards_dir, snakemake.output.shards_dir, int(snakemake.params.short_side),
                  int(snakemake.params.quality), max(1, int(snakemake.threads)))


if __name__ == "__main__":
    from _helpers import rule_entry

    rule_entry(main, globals())
