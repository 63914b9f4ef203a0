"""Perceptual hashes of stored images, one image or many (webdataset tars, image folders, eval sets).

* **Hashes** (:func:`hash_image_bytes`). ``sha256`` of the stored bytes (exact duplicates), a 64-bit **pHash** (DCT of
  a 32x32 grey image, low 8x8 block against its median) and a 64-bit **dHash** (9x8 horizontal gradients). Both are
  bit-identical to ``imagehash.phash`` / ``imagehash.dhash`` on the same grey image (tested), but computed by our
  own numpy code from **one** decode: for JPEG we ask libjpeg for a reduced-size greyscale decode
  (``Image.draft("L", (128, 128))``: DCT-domain 1/2..1/8 scaling, no colour conversion), which makes hashing
  2-4x faster on the paper's 512-px storage (perf/README_dedup.md) while keeping the pHash within 0-2 bits of the
  full decode. Pixels are hashed as stored (no EXIF rotation: neither img2dataset's re-encode nor the PIL loaders of
  training and evaluation apply it); alpha is matted onto white, as img2dataset does.
* **Many images** (:func:`hash_webdataset_shards`, :func:`hash_image_folder`, :func:`hash_eval_set`): one row per
  image (``HASH_COLUMNS``), tars streamed without extraction, a fork pool over tars or file batches; corrupt images
  are skipped and listed, an unreadable tar raises :class:`ShardReadError` (or is skipped and listed).

Grouping and decontamination on these hashes: ``lib.data.image_dedup``.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing as mp
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

log = logging.getLogger("entitynet.image_hash")

IMAGE_EXTS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
DRAFT_SIZE = 128          # JPEG: decode at the smallest 1/2^k scale that keeps both sides >= 128 px
_U64 = np.uint64

# pHash: rows 0..7 of the (unnormalised, scipy.fftpack type-II) DCT matrix of size 32: D8 @ X @ D8.T is the low
# 8x8 block of dct(dct(X, axis=0), axis=1), i.e. exactly what imagehash.phash thresholds.
_N = np.arange(32)
_D8 = 2.0 * np.cos(np.pi * np.arange(8)[:, None] * (2 * _N[None, :] + 1) / 64.0)


class CorruptImageError(ValueError):
    """Raised when image bytes cannot be decoded (truncated, not an image, decompression bomb, ...).

    ``str(err)`` names the image (when the caller passed a name) and the decoder's own message.
    """


class ShardReadError(RuntimeError):
    """Raised when a webdataset tar cannot be read to its end (truncated or not a tar); names the tar."""


# --------------------------------------------------------------------------------------------------- hashing


def _bits_to_int(bits: np.ndarray) -> int:
    """Pack 64 booleans (row-major, first = most significant) into an int, as ``int(str(ImageHash), 16)``."""
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big")


def phash_from_gray(gray: Image.Image) -> int:
    """64-bit pHash of a greyscale (mode ``L``) PIL image; equals ``int(str(imagehash.phash(gray)), 16)``."""
    px = np.asarray(gray.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = _D8 @ px @ _D8.T
    return _bits_to_int(low > np.median(low))


def dhash_from_gray(gray: Image.Image) -> int:
    """64-bit dHash of a greyscale PIL image; equals ``int(str(imagehash.dhash(gray)), 16)``."""
    px = np.asarray(gray.resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    return _bits_to_int(px[:, 1:] > px[:, :-1])


def _to_gray(img: Image.Image) -> Image.Image:
    """Greyscale the way the stored training copy looks: alpha matted on white, 16-bit scaled to 8-bit."""
    mode = img.mode
    if mode == "L":
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 257.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0) / 255.0
        return Image.fromarray(np.clip(arr / scale, 0, 255).astype(np.uint8), mode="L")
    return img.convert("L")


def hash_image_full(data: bytes, name: str | None = None) -> tuple[str, int, int, int, int]:
    """Like :func:`hash_image_bytes` but also returns the stored ``(width, height)``: ``(sha, phash, dhash, w, h)``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"image {name or ''} must be bytes, got {type(data).__name__}")
    sha = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if img.format == "JPEG":
                img.draft("L", (DRAFT_SIZE, DRAFT_SIZE))
            gray = _to_gray(img)
            gray.load()
            if gray.size[0] < 1 or gray.size[1] < 1:
                raise ValueError("empty image")
            ph, dh = phash_from_gray(gray), dhash_from_gray(gray)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, EOFError, DecompressionBombError...
        where = f"image {name!r}" if name else f"image bytes ({len(data)} B, sha256 {sha[:12]})"
        raise CorruptImageError(f"cannot decode {where}: {type(exc).__name__}: {exc}") from exc
    return sha, ph, dh, int(width), int(height)


def hash_image_bytes(data: bytes) -> tuple[str, int, int]:
    """Hash one encoded image: ``(sha256 hex of the bytes, 64-bit pHash, 64-bit dHash)``.

    Hashes are unsigned Python ints in ``[0, 2**64)`` (bit 63 = top-left DCT coefficient, as imagehash prints them).
    Raises :class:`CorruptImageError` for bytes PIL cannot decode.
    """
    sha, ph, dh, _, _ = hash_image_full(data)
    return sha, ph, dh


# ----------------------------------------------------------------------------------------- hashing many files

_WDS_NAME = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")   # webdataset: key = path up to the first dot of the basename

HASH_COLUMNS = ["key", "shard", "sha256", "phash", "dhash", "width", "height"]


def _split_member(name: str) -> tuple[str, str] | None:
    m = _WDS_NAME.match(name)
    return (m.group(1), m.group(2).lower()) if m else None


def _new_rows(meta_fields: Sequence[str]) -> dict[str, list]:
    return {c: [] for c in [*HASH_COLUMNS, *meta_fields]}


def _hash_tar(args: tuple[str, tuple[str, ...], tuple[str, ...], str]) -> tuple[dict[str, list], list[dict]]:
    """Hash every image member of one tar (stream mode, no extraction). Returns (columns, corrupt records)."""
    tar_path, exts, meta_fields, shard_name = args
    rows = _new_rows(meta_fields)
    corrupt: list[dict] = []
    metas: dict[str, dict] = {}
    try:
        with tarfile.open(tar_path, mode="r|*") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                parts = _split_member(member.name)
                if parts is None:
                    continue
                key, ext = parts
                if ext == "json" and meta_fields:
                    try:
                        meta = json.loads(tf.extractfile(member).read())
                        metas[key] = {f: meta.get(f) for f in meta_fields} if isinstance(meta, dict) else {}
                    except (ValueError, UnicodeDecodeError):
                        metas[key] = {}
                    continue
                if ext not in exts:
                    continue
                data = tf.extractfile(member).read()
                try:
                    sha, ph, dh, w, h = hash_image_full(data, f"{shard_name}:{member.name}")
                except CorruptImageError as exc:
                    corrupt.append({"key": key, "shard": shard_name, "error": str(exc)})
                    continue
                for col, val in zip(HASH_COLUMNS, (key, shard_name, sha, ph, dh, w, h)):
                    rows[col].append(val)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ShardReadError(f"cannot read webdataset shard {tar_path}: {type(exc).__name__}: {exc} "
                             "(truncated download? re-run the download chunk)") from exc
    for f in meta_fields:
        rows[f] = [metas.get(k, {}).get(f) for k in rows["key"]]
    return rows, corrupt


def _hash_files(args: tuple[list[str], str, str]) -> tuple[dict[str, list], list[dict]]:
    """Hash a batch of image files of one folder; keys are posix paths relative to the folder."""
    paths, root, shard_name = args
    rows = _new_rows(())
    corrupt: list[dict] = []
    for p in paths:
        key = Path(p).relative_to(root).as_posix()
        try:
            data = Path(p).read_bytes()
            sha, ph, dh, w, h = hash_image_full(data, p)
        except CorruptImageError as exc:
            corrupt.append({"key": key, "shard": shard_name, "error": str(exc)})
            continue
        for col, val in zip(HASH_COLUMNS, (key, shard_name, sha, ph, dh, w, h)):
            rows[col].append(val)
    return rows, corrupt


def _run_jobs(fn, jobs: list, processes: int, desc: str, unit_of) -> Iterator[tuple[dict, list]]:
    """Run ``fn`` over ``jobs`` in order, in a fork pool when ``processes > 1``; tqdm progress in units of images."""
    bar = tqdm(total=None, desc=desc, unit="img", disable=None, mininterval=5.0)
    step = max(len(jobs) // 20, 1)
    n_img = 0

    def done(i: int, res) -> None:
        nonlocal n_img
        n_img += unit_of(res)
        bar.update(unit_of(res))
        if (i + 1) % step == 0 or i + 1 == len(jobs):
            log.info("%s: %d/%d jobs, %d images", desc, i + 1, len(jobs), n_img)

    try:
        if processes > 1 and len(jobs) > 1:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=ctx) as ex:
                for i, res in enumerate(ex.map(fn, jobs, chunksize=1)):
                    done(i, res)
                    yield res
        else:
            for i, job in enumerate(jobs):
                res = fn(job)
                done(i, res)
                yield res
    finally:
        bar.close()


def _assemble(results: Iterable[tuple[dict, list]], meta_fields: Sequence[str]) -> pd.DataFrame:
    cols = _new_rows(meta_fields)
    corrupt: list[dict] = []
    for rows, bad in results:
        for c in cols:
            cols[c].extend(rows.get(c, [None] * len(rows["key"])))
        corrupt.extend(bad)
    df = pd.DataFrame({
        "key": pd.array(cols["key"], dtype="string"),
        "shard": pd.Categorical(cols["shard"]),
        "sha256": pd.array(cols["sha256"], dtype="string"),
        "phash": np.fromiter(cols["phash"], dtype=_U64, count=len(cols["phash"])),
        "dhash": np.fromiter(cols["dhash"], dtype=_U64, count=len(cols["dhash"])),
        "width": np.asarray(cols["width"], dtype=np.int32),
        "height": np.asarray(cols["height"], dtype=np.int32),
        **{f: pd.array(cols[f], dtype="object") for f in meta_fields},
    })
    df.attrs["corrupt"] = corrupt
    if corrupt:
        log.warning("%d corrupt image(s) skipped, e.g. %s", len(corrupt), corrupt[0]["error"])
    return df


def hash_webdataset_shards(tar_paths: Sequence[str | os.PathLike], image_exts: Sequence[str] = IMAGE_EXTS, *,
                           processes: int = 1, meta_fields: Sequence[str] = ("uid",),
                           on_bad_shard: Literal["raise", "skip"] = "raise") -> pd.DataFrame:
    """Hash every image in webdataset tars, streaming each tar (``tarfile`` stream mode, nothing extracted).

    Returns one row per image: ``key`` (webdataset key: member path up to the first dot), ``shard`` (the tar path
    as given, so ``(shard, key)`` is unique even where img2dataset keys repeat across chunks), ``sha256``,
    ``phash``, ``dhash`` (uint64), ``width``, ``height`` (stored size), plus ``meta_fields`` read from the sample's
    ``<key>.json`` when present (img2dataset writes ``uid`` there; null when absent). Row order: tars in the given
    order, members in tar order. Image members are matched on their full extension, case-insensitively.

    Corrupt images are skipped and listed in ``df.attrs["corrupt"]`` (dicts ``key, shard, error``). A tar that cannot
    be read to its end raises :class:`ShardReadError`, or with ``on_bad_shard="skip"`` is left out entirely and
    listed in ``df.attrs["bad_shards"]``. ``processes > 1`` hashes tars in parallel (fork pool).
    """
    if on_bad_shard not in ("raise", "skip"):
        raise ValueError(f"on_bad_shard must be 'raise' or 'skip', got {on_bad_shard!r}")
    exts = tuple(e.lower().lstrip(".") for e in image_exts)
    meta_fields = tuple(meta_fields)
    jobs = [(str(p), exts, meta_fields, str(p)) for p in tar_paths]
    bad: list[dict] = []
    results = []
    for rows, corrupt in _run_jobs(_guarded_tar, jobs, processes, "hash shards", lambda r: len(r[0]["key"])):
        for b in rows.pop("_bad", []):
            if on_bad_shard == "raise":
                raise ShardReadError(b["error"])
            log.warning("%s; skipping the whole shard", b["error"])
            bad.append(b)
        results.append((rows, corrupt))
    df = _assemble(results, meta_fields)
    df.attrs["bad_shards"] = bad
    log.info("hashed %d images from %d shard(s) (%d corrupt, %d bad shard(s))", len(df), len(jobs),
             len(df.attrs["corrupt"]), len(bad))
    return df


def _guarded_tar(job):
    """:func:`_hash_tar` whose :class:`ShardReadError` travels back as ``rows["_bad"]`` (picklable, in order)."""
    try:
        return _hash_tar(job)
    except ShardReadError as exc:
        rows = _new_rows(job[2])
        rows["_bad"] = [{"shard": job[0], "error": str(exc)}]
        return rows, []


def hash_image_folder(path: str | os.PathLike, image_exts: Sequence[str] = IMAGE_EXTS, *,
                      processes: int = 1, batch_size: int = 256) -> pd.DataFrame:
    """Hash every image file below ``path`` (recursive, sorted; extension matched case-insensitively).

    Same columns as :func:`hash_webdataset_shards` (no meta fields): ``key`` is the path relative to ``path``
    (posix, with extension), ``shard`` is ``str(path)``. Corrupt files are listed in ``df.attrs["corrupt"]``.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a directory")
    exts = {e.lower().lstrip(".") for e in image_exts}
    files = sorted(str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in exts)
    jobs = [(files[i:i + batch_size], str(root), str(root)) for i in range(0, len(files), batch_size)]
    df = _assemble(_run_jobs(_hash_files, jobs, processes, f"hash {root.name}", lambda r: len(r[0]["key"])), ())
    log.info("hashed %d images under %s (%d corrupt)", len(df), root, len(df.attrs["corrupt"]))
    return df


def hash_eval_set(path: str | os.PathLike, image_exts: Sequence[str] = IMAGE_EXTS, *,
                  processes: int = 1) -> pd.DataFrame:
    """Hash an evaluation set: every ``*.tar`` below ``path`` if there is any (clip_benchmark ``wds/`` layout,
    e.g. ``DIR/test/0.tar``), else every image file below it (ImageFolder-like layouts such as ``val/<class>/``).

    Raises ``FileNotFoundError`` if ``path`` is missing and ``ValueError`` if it holds no image at all, so a
    misconfigured eval root cannot silently pass decontamination.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"eval set root {root} does not exist")
    tars = sorted(root.rglob("*.tar")) if root.is_dir() else [root]
    if tars:
        df = hash_webdataset_shards(tars, image_exts, processes=processes, meta_fields=())
    else:
        df = hash_image_folder(root, image_exts, processes=processes)
    if len(df) == 0:
        raise ValueError(f"eval set root {root} holds no decodable image with extension in {tuple(image_exts)}")
    return df
