"""Derive training shards at a smaller stored short side from the downloaded ones (library of rule
``resize_shards``, opt-in).

Why: training is data-bound on JPEG decode, whose cost scales with the stored pixels. The paper stores images with a
short side of at most 512 px; the training crop is RandomResizedCrop(224, scale 0.4–1.0, ratio 0.9–1.111). Every
crop stays at least 224 px (no upscaling, i.e. the crop semantics are kept) as long as the stored short side is at
least :func:`lib.data.resize_spec.min_lossless_short_side` (374 px for those settings), so 384-px shards train the
same augmentation on ~56 % of the pixels, while 256-px shards would not (small crops become ~1.4x upscales).

How: every ``.jpg`` payload whose short side is larger than ``short_side`` goes through img2dataset's own
``Resizer``, configured as the download configures it (``keep_ratio``, ``resize_only_if_bigger``, OpenCV
``INTER_AREA``, JPEG at the download's quality), so it is downscaled exactly as img2dataset downscaled it at download
time. Smaller images and every other member (``.txt``, ``.json``) are copied byte for byte, in the same order, under
the same names; an image the resizer cannot decode is kept as it is and counted (``unreadable``), never dropped. The
split layout of ``build_shards`` (``train/``, ``val/``, each with ``NNNNN.tar`` and ``sizes.json``) is mirrored, and
``resize_summary.json`` records the settings and per-split counts and byte totals.
"""

import functools
import io
import json
import logging
import os
import shutil
import tarfile
import time
from pathlib import Path

from _helpers import atomic_path, write_json

log = logging.getLogger("entitynet.resize_shards")

OUTCOMES = ("resized", "kept", "unreadable")
JPEG_SUFFIXES = (".jpg", ".jpeg")
SUMMARY_NAME = "resize_summary.json"
STATE_DIR = ".resize_state"  # per-tar stats while a run is in progress (removed at the end)
MAX_EXAMPLES = 20  # unreadable member names kept per tar in the stats


@functools.lru_cache(maxsize=8)
def _resizer(short_side: int, quality: int):
    """img2dataset's resizer as ``lib.data.chunk_download`` runs it (keep_ratio, only if bigger, INTER_AREA, jpg)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations (imported by img2dataset) phones home
    from img2dataset.resizer import Resizer

    # skip_reencode: a JPEG that is not downscaled comes back as its own bytes (no wasted encode); every downscaled
    # image is encoded as the download encodes it
    return Resizer(short_side, "keep_ratio", True, encode_quality=quality, encode_format="jpg", skip_reencode=True)


def resize_jpeg(data: bytes, short_side: int, quality: int = 95) -> tuple[bytes, str]:
    """Downscale one JPEG so that its short side is ``short_side``; returns ``(bytes, outcome)``.

    ``outcome`` is ``"resized"`` (short side was larger: img2dataset's ``Resizer`` decoded it, downscaled it with
    OpenCV ``INTER_AREA`` and re-encoded it at ``quality``), ``"kept"`` (short side already ``<= short_side``: the
    original bytes, untouched) or ``"unreadable"`` (the resizer cannot decode or encode it: the original bytes, for
    the caller to count and log). The resizer decodes with ``IMREAD_UNCHANGED`` (no EXIF rotation, grey stays grey)
    and composites an alpha channel on white.
    """
    if short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    if not data:
        return data, "unreadable"
    out, _w, _h, orig_w, orig_h, err = _resizer(int(short_side), int(quality))(io.BytesIO(data))
    if err is not None or out is None:
        return data, "unreadable"
    if min(orig_w, orig_h) <= short_side:
        return data, "kept"
    return out, "resized"


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


def _check_args(src_root: Path, out: Path, short_side: int, quality: int, processes: int) -> None:
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


def _plan(src_root: Path, out: Path, splits: dict, short_side: int, quality: int) -> tuple[list, dict, dict]:
    """Copy the non-tar files, find the reusable tars; returns ``(jobs, per_tar stats so far, reused counts)``."""
    for f in src_root.iterdir():  # top-level files (build_shards writes none; mirror whatever is there)
        if f.is_file() and not f.name.startswith(".") and f.name != SUMMARY_NAME:
            _copy_file(f, out / f.name)
    known = _known_stats(out, short_side, quality)
    per_tar: dict[str, dict[str, dict]] = {s: {} for s in splits}
    reused: dict[str, int] = dict.fromkeys(splits, 0)
    jobs = []
    for split, (_sizes, tars) in splits.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        (out / STATE_DIR / split).mkdir(parents=True, exist_ok=True)
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
    return jobs, per_tar, reused


def _run_jobs(jobs: list, processes: int, record) -> None:
    """Run the tar jobs (inline, or in a pool of spawned workers) and ``record(split, name, stats)`` each result."""
    if processes == 1 or len(jobs) <= 1:
        for job in jobs:
            record(*_resize_job(job))
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(min(processes, len(jobs))) as pool:
        for res in pool.imap_unordered(_resize_job, jobs):
            record(*res)


def _summary(src_root: Path, short_side: int, quality: int, processes: int, seconds: float, done_jpegs: int,
             per_tar: dict, reused: dict) -> dict:
    split_summ = {}
    for split in per_tar:
        agg = _aggregate(per_tar[split])
        agg["reused_tars"] = reused[split]
        split_summ[split] = agg
    total = _aggregate({f"{s}/{n}": st for s, tars in per_tar.items() for n, st in tars.items()})
    total["reused_tars"] = sum(reused.values())
    return {"short_side": int(short_side), "quality": int(quality), "source": str(src_root),
            "processes": int(processes), "seconds": round(seconds, 3),
            "images_per_s": round(done_jpegs / seconds, 2) if seconds > 0 and done_jpegs else None,
            "splits": split_summ, "total": total,
            "shards": {s: dict(sorted(t.items())) for s, t in per_tar.items()}}


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
    from tqdm import tqdm

    src_root, out = Path(shards_dir), Path(out_dir)
    _check_args(src_root, out, short_side, quality, processes)
    splits = _list_splits(src_root)
    out.mkdir(parents=True, exist_ok=True)
    jobs, per_tar, reused = _plan(src_root, out, splits, short_side, quality)
    state = out / STATE_DIR
    n_images = sum(splits[split][0][name] for split, name, *_ in jobs)
    log.info("resize %s -> %s: short side %d, JPEG q%d, %d tar(s) to do (%d images), %d reused, %d process(es)",
             src_root, out, short_side, quality, len(jobs), n_images, sum(reused.values()), processes)

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

        _run_jobs(jobs, processes, record)
    summary = _summary(src_root, short_side, quality, processes, time.perf_counter() - t0, done_jpegs, per_tar,
                       reused)
    write_json(summary, out / SUMMARY_NAME)
    shutil.rmtree(state, ignore_errors=True)
    for split, agg in summary["splits"].items():
        log.info("%s: %d samples, %d resized, %d kept, %d unreadable; JPEG bytes %.0f -> %.0f per image (x%.3f)",
                 split, agg["samples"], agg["resized"], agg["kept"], agg["unreadable"], agg["mean_jpeg_bytes_in"],
                 agg["mean_jpeg_bytes_out"], agg["bytes_ratio"])
    if summary["total"]["unreadable"]:
        log.warning("%d unreadable JPEG(s) kept unchanged (as in the source shards), e.g. %s",
                    summary["total"]["unreadable"], summary["total"]["unreadable_examples"][:5])
    return summary
