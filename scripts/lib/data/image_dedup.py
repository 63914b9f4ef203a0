"""Image deduplication and evaluation-set decontamination with perceptual hashes (docs/PAPER_NOTES.md §9).

The authors' dedup code is unreleased ("dedup within the training set ... and dedup against downstream evaluation
sets"; method and thresholds unknown). This module is our documented choice:

* **Hashes** (:func:`hash_image_bytes`). ``sha256`` of the stored bytes (exact duplicates), a 64-bit **pHash** (DCT of
  a 32x32 grey image, low 8x8 block against its median) and a 64-bit **dHash** (9x8 horizontal gradients). Both are
  bit-identical to ``imagehash.phash`` / ``imagehash.dhash`` on the same grey image (tested), but computed by our
  own numpy code from **one** decode: for JPEG we ask libjpeg for a reduced-size greyscale decode
  (``Image.draft("L", (128, 128))``: DCT-domain 1/2..1/8 scaling, no colour conversion), which makes hashing
  2-4x faster on the paper's 512-px storage (perf/README_dedup.md) while keeping the pHash within 0-2 bits of the
  full decode. Pixels are hashed as stored (no EXIF rotation: neither img2dataset's re-encode nor the PIL loaders of
  training and evaluation apply it); alpha is matted onto white, as img2dataset does.
* **Duplicate groups** (:func:`find_duplicate_groups`): same sha256, or same pHash, or pHash Hamming distance
  <= threshold, closed transitively with a vectorised union-find. Near pairs are found without all-pairs with a
  generalised pigeonhole multi-index: split the 64 bits into ``m >= t+1`` contiguous bands; two hashes within
  distance ``t`` agree exactly on at least ``m - t`` bands, so every such pair shares the key of at least one
  ``(m - t)``-subset of bands. Per subset we sort the masked keys (numpy) and compare only neighbours inside runs of
  equal keys. ``m = t + 1`` (one exact band) is the textbook scheme; ``m`` is chosen by a cost model, e.g. 6 bands and
  15 band pairs for 1M hashes at ``t = 4``, because 13-bit single-band buckets would hold ~100 unrelated hashes each.
  The search is exact (no pair within the threshold is missed). Memory grows with the number of hashes only.
* **Decontamination** (:func:`decontaminate`): the same band keys built on the (smaller) eval side; training hashes
  are streamed through them in chunks (``searchsorted``).
* **Merge** (:func:`merge_duplicates`): one row per group, the way the paper merges images found by several queries
  (docs/PAPER_NOTES.md §8): a representative's scalar columns, the union of the list columns, ``is_living`` = any.

Entry point for the Snakemake rule ``dedup_decontaminate``: see :func:`main`.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import multiprocessing as mp
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

log = logging.getLogger("entitynet.image_dedup")

IMAGE_EXTS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
DRAFT_SIZE = 128          # JPEG: decode at the smallest 1/2^k scale that keeps both sides >= 128 px
DEFAULT_HAMMING_THRESHOLD = 4
LIST_COLUMNS: tuple[str, ...] = ("urls", "query_ids", "alt_texts", "page_urls", "qids", "kinds", "backends")
ANY_COLUMNS: tuple[str, ...] = ("is_living",)
MAX_HAMMING_THRESHOLD = 16
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


# ------------------------------------------------------------------------------------- band index machinery


def as_uint64(values: Any, name: str = "phash") -> np.ndarray:
    """Hashes as a uint64 numpy array (accepts uint64, int64 two's-complement, or Python ints); rejects nulls."""
    if isinstance(values, pd.Series):
        if values.isna().any():
            raise ValueError(f"column {name!r} has {int(values.isna().sum())} missing hash(es); drop corrupt "
                             "images before deduplication")
        if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) and values.dtype.kind in "iu":
            values = values.to_numpy(dtype=np.uint64 if values.dtype.kind == "u" else np.int64)
        else:
            values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype == np.uint64:
        return arr
    if arr.dtype == np.int64:
        return arr.view(np.uint64)
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "i" and (arr < 0).any():
            raise ValueError(f"column {name!r}: negative hashes only allowed as int64 two's complement")
        return arr.astype(np.uint64)
    if arr.dtype == object:
        try:
            return np.fromiter((int(v) % (1 << 64) for v in arr), dtype=np.uint64, count=len(arr))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {name!r} holds non-integer hashes: {exc}") from exc
    raise TypeError(f"column {name!r} must hold 64-bit integer hashes, got dtype {arr.dtype}")


def _check_threshold(t: int) -> int:
    if isinstance(t, bool) or int(t) != t or not 0 <= int(t) <= MAX_HAMMING_THRESHOLD:
        raise ValueError(f"hamming_threshold must be an integer in [0, {MAX_HAMMING_THRESHOLD}], got {t!r}")
    return int(t)


def band_layout(n_bands: int) -> list[tuple[int, int]]:
    """``(shift, width)`` of ``n_bands`` contiguous bands covering bits 0..63 (widths differ by at most 1)."""
    if not 1 <= n_bands <= 64:
        raise ValueError(f"n_bands must be in [1, 64], got {n_bands}")
    widths = [64 // n_bands + (1 if i < 64 % n_bands else 0) for i in range(n_bands)]
    shifts = np.cumsum([0, *widths[:-1]]).tolist()
    return list(zip(shifts, widths))


def combo_masks(n_bands: int, hamming_threshold: int) -> list[np.uint64]:
    """Masks of every ``(n_bands - t)``-subset of bands: hashes within distance t agree exactly on one of them."""
    t = _check_threshold(hamming_threshold)
    if n_bands <= t:
        raise ValueError(f"need more bands than the threshold (pigeonhole): n_bands={n_bands}, t={t}")
    bands = [((1 << w) - 1) << s for s, w in band_layout(n_bands)]
    return [np.uint64(sum(bands[i] for i in c)) for c in combinations(range(n_bands), n_bands - t)]


# cost of sorting one hash per band subset relative to verifying one candidate pair: measured ~100 ns vs ~13 ns
# on the 2-core dev box (1M uniform hashes: t=4 -> 6 bands 1.5 s, 5 bands 4.5 s; t=8 -> 11 bands 27 s, 10 bands 41 s)
_SORT_COST = 8.0
_MAX_COMBOS = 5000


def choose_n_bands(n_index: int, n_query: int, hamming_threshold: int, self_join: bool = False) -> int:
    """Number of bands minimising a simple cost model: per band subset one sort of the index side and one lookup
    per query, plus the expected number of candidate pairs for uniformly distributed hashes."""
    t = _check_threshold(hamming_threshold)
    best, best_cost = t + 1, math.inf
    for m in range(t + 1, 65):
        k = m - t
        n_combos = math.comb(m, k)
        if n_combos > _MAX_COMBOS:
            break
        key_bits = k * 64.0 / m
        # cross pairs cost ~5x a self pair (ragged expansion with np.repeat): 64 ns vs 13 ns measured
        pairs = n_index * n_query / 2.0 ** key_bits * (0.5 if self_join else 5.0)
        lookups = 0 if self_join else n_query * max(math.log2(max(n_index, 2)), 1.0) / 2.0
        cost = n_combos * (_SORT_COST * n_index + lookups + pairs)
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def iter_near_pairs(hashes: np.ndarray, hamming_threshold: int, n_bands: int | None = None,
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(i, j, distance)`` batches of index pairs ``i != j`` with ``popcount(h[i]^h[j]) <= t``.

    Exact (no pair is missed); a pair can be yielded more than once (once per band subset it agrees on). Work per
    band subset: one argsort of the masked keys, then neighbours at offset 1, 2, ... inside runs of equal keys.
    """
    t = _check_threshold(hamming_threshold)
    h = as_uint64(hashes)
    n = len(h)
    if n < 2:
        return
    m = n_bands or choose_n_bands(n, n, t, self_join=True)
    for mask in combo_masks(m, t):
        keys = h & mask
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        brk = np.flatnonzero(sk[1:] != sk[:-1]) + 1
        starts = np.concatenate(([0], brk))
        sizes = np.diff(np.concatenate((starts, [n])))
        multi = sizes > 1
        if not multi.any():
            continue
        if sizes.max() > 20000:
            log.warning("band subset %#018x: a bucket of %d hashes (quadratic work); many near-identical "
                        "low-detail images?", int(mask), int(sizes.max()))
        in_multi = np.repeat(multi, sizes)
        pos = np.flatnonzero(in_multi)
        end = np.repeat(starts + sizes, sizes)[in_multi]
        hs = h[order]
        d = 1
        while pos.size:
            alive = pos + d < end
            pos, end = pos[alive], end[alive]
            if not pos.size:
                break
            dist = _popcount(hs[pos] ^ hs[pos + d])
            ok = dist <= t
            if ok.any():
                p = pos[ok]
                yield order[p], order[p + d], dist[ok]
            d += 1


def iter_cross_pairs(index_hashes: np.ndarray, query_hashes: np.ndarray, hamming_threshold: int,
                     n_bands: int | None = None, chunk_size: int = 1 << 18, max_candidates: int = 1 << 24,
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(query_idx, index_idx, distance)`` batches of all cross pairs within ``t`` (exact; may repeat).

    The band keys are sorted once per band subset on the index side; queries are processed ``chunk_size`` at a
    time with ``searchsorted`` and candidate lists expanded at most ``max_candidates`` at a time, so memory is
    bounded by the index size plus a chunk, whatever the number of queries.
    """
    t = _check_threshold(hamming_threshold)
    e = as_uint64(index_hashes, "index hashes")
    q = as_uint64(query_hashes, "query hashes")
    if len(e) == 0 or len(q) == 0:
        return
    m = n_bands or choose_n_bands(len(e), len(q), t)
    for mask in combo_masks(m, t):
        ekeys = e & mask
        eorder = np.argsort(ekeys, kind="stable")
        sk = ekeys[eorder]
        es = e[eorder]
        for c0 in range(0, len(q), chunk_size):
            qk = q[c0:c0 + chunk_size] & mask
            lo = np.searchsorted(sk, qk, "left")
            cnt = np.searchsorted(sk, qk, "right") - lo
            hit = np.flatnonzero(cnt)
            if not hit.size:
                continue
            lo, cnt = lo[hit], cnt[hit]
            csum = np.cumsum(cnt)
            # split the hit list so that at most max_candidates pairs are materialised at once
            bounds = np.searchsorted(csum, np.arange(max_candidates, int(csum[-1]), max_candidates), "right")
            for a, b in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [len(hit)]))):
                if a >= b:
                    continue
                c = cnt[a:b]
                total = int(c.sum())
                qi = np.repeat(hit[a:b], c)
                first = np.repeat(np.cumsum(c) - c, c)
                ep = np.repeat(lo[a:b], c) + (np.arange(total) - first)
                dist = _popcount(q[c0 + qi] ^ es[ep])
                ok = dist <= t
                if ok.any():
                    yield c0 + qi[ok], eorder[ep[ok]], dist[ok]


class UnionFind:
    """Array union-find over ``0..n-1`` with vectorised batch unions.

    Invariant between calls: ``parent`` is fully compressed and every root is the smallest member of its set
    (hooking always points the larger root at the smaller one), so ``parent`` *is* the label array.
    """

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)

    def _compress(self) -> None:
        p = self.parent
        while True:
            pp = p[p]
            if np.array_equal(pp, p):
                break
            p = pp
        self.parent = p

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        """Merge the sets of ``a[i]`` and ``b[i]`` for every i."""
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        while a.size:
            ra, rb = self.parent[a], self.parent[b]
            diff = ra != rb
            if not diff.any():
                break
            a, b, ra, rb = a[diff], b[diff], ra[diff], rb[diff]
            hi, lo = np.maximum(ra, rb), np.minimum(ra, rb)
            np.minimum.at(self.parent, hi, lo)
            self._compress()

    def labels(self) -> np.ndarray:
        """Root (smallest member) of every element."""
        return self.parent


# ------------------------------------------------------------------------------------------------- dedup


def find_duplicate_groups(df: pd.DataFrame, hamming_threshold: int = DEFAULT_HAMMING_THRESHOLD, *,
                          hash_col: str = "phash", sha_col: str | None = "sha256",
                          n_bands: int | None = None) -> pd.Series:
    """Group exact and near-duplicate images; returns ``group_id`` (int64) aligned with ``df.index``.

    Rows are in one group when connected by any chain of: equal ``sha_col`` (skipped if None or absent; null
    sha256 never matches), equal ``hash_col``, or ``hash_col`` Hamming distance ``<= hamming_threshold``.
    Group ids are dense ``0..G-1`` numbered by the group's first row, so a row that duplicates nothing has a group
    of its own. Near pairs are searched among the distinct pHash values only (see module docstring); memory is
    O(rows), time ~ (number of band subsets) x sort of the distinct hashes plus the candidate pairs.
    """
    t = _check_threshold(hamming_threshold)
    n = len(df)
    if n == 0:
        return pd.Series(np.zeros(0, dtype=np.int64), index=df.index, name="group_id")
    h = as_uint64(df[hash_col], hash_col)
    uf = UnionFind(n)
    rows = np.arange(n, dtype=np.int64)
    if sha_col is not None and sha_col in df.columns:
        codes, _ = pd.factorize(df[sha_col], use_na_sentinel=True)
        valid = codes >= 0
        first = np.full(int(codes.max()) + 1 if valid.any() else 0, n, dtype=np.int64)
        np.minimum.at(first, codes[valid], rows[valid])
        dup = valid & (first[np.where(valid, codes, 0)] != rows)
        uf.union(rows[dup], first[codes[dup]])
    uniq, first_row, inv = np.unique(h, return_index=True, return_inverse=True)
    same = first_row[inv] != rows
    uf.union(rows[same], first_row[inv][same])
    n_pairs = 0
    if t > 0:
        for i, j, _ in iter_near_pairs(uniq, t, n_bands):
            n_pairs += len(i)
            uf.union(first_row[i], first_row[j])
    roots = uf.labels()
    # dense ids in order of first occurrence: a root is its group's smallest row
    is_root = roots == rows
    dense = np.cumsum(is_root) - 1
    gid = dense[roots]
    log.info("dedup: %d images, %d distinct pHashes, %d near pairs (t=%d) -> %d groups", n, len(uniq), n_pairs,
             t, int(is_root.sum()))
    return pd.Series(gid.astype(np.int64), index=df.index, name="group_id")


def _key_column(df: pd.DataFrame, key_col: str | None) -> str | None:
    if key_col is not None:
        if key_col not in df.columns:
            raise KeyError(f"key column {key_col!r} not in columns {list(df.columns)}")
        return key_col
    for c in ("key", "uid"):
        if c in df.columns:
            return c
    return None


def select_representatives(df: pd.DataFrame, group_ids: pd.Series | np.ndarray, *, key_col: str | None = None,
                           representative: Literal["largest", "first"] = "largest") -> pd.Series:
    """Boolean Series (aligned with ``df``): True for exactly one row per group.

    ``"first"``: the row whose ``(key_col, shard)`` sorts first (key column defaults to ``key``, else ``uid``,
    else row order). ``"largest"``: the row with the largest ``width * height`` (nulls count as 0), ties broken
    as ``"first"``, so without size columns it is the same as ``"first"``.
    """
    if representative not in ("largest", "first"):
        raise ValueError(f"representative must be 'largest' or 'first', got {representative!r}")
    g = np.asarray(group_ids, dtype=np.int64)
    if len(g) != len(df):
        raise ValueError(f"group_ids has {len(g)} entries for {len(df)} rows")
    n = len(df)
    sort_cols: list[np.ndarray] = []          # np.lexsort: last key is primary
    sort_cols.append(np.arange(n))
    kc = _key_column(df, key_col)
    if "shard" in df.columns:
        sort_cols.append(pd.factorize(df["shard"].astype("string").fillna(""), sort=True)[0])
    if kc is not None:
        sort_cols.append(pd.factorize(df[kc].astype("string").fillna(""), sort=True)[0])
    if representative == "largest" and {"width", "height"} <= set(df.columns):
        area = (pd.to_numeric(df["width"], errors="coerce").fillna(0).to_numpy(np.float64)
                * pd.to_numeric(df["height"], errors="coerce").fillna(0).to_numpy(np.float64))
        sort_cols.append(-area)
    sort_cols.append(g)
    order = np.lexsort(sort_cols)
    first_of_group = np.ones(n, dtype=bool)
    first_of_group[1:] = g[order][1:] != g[order][:-1]
    rep = np.zeros(n, dtype=bool)
    rep[order[first_of_group]] = True
    return pd.Series(rep, index=df.index, name="representative")


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _iter_list(v: Any) -> Iterable:
    if _is_null(v):
        return ()
    if isinstance(v, (str, bytes)):
        return (v,)
    return v


def merge_duplicates(df: pd.DataFrame, group_ids: pd.Series | np.ndarray, *, key_col: str | None = None,
                     representative: Literal["largest", "first"] | np.ndarray = "largest",
                     list_columns: Sequence[str] = LIST_COLUMNS, any_columns: Sequence[str] = ANY_COLUMNS,
                     ) -> pd.DataFrame:
    """Merge each duplicate group into one row, as the paper merges images found by several queries
    (docs/PAPER_NOTES.md §8).

    The representative (:func:`select_representatives`, or a boolean mask marking one row per group) keeps its scalar columns (``uid``, ``url``, ``licence``,
    sizes...). Each of ``list_columns`` present becomes the ordered union (first occurrence wins, nulls and empty
    strings dropped) over the group: the representative's items first, then the other members in key order. Each
    of ``any_columns`` present becomes the logical OR over the group. Adds ``n_merged`` (group size). Rows of
    singleton groups are returned unchanged. Output: one row per group, in the order of the representatives'
    positions in ``df``, with their index labels.
    """
    g = np.asarray(group_ids, dtype=np.int64)
    if len(g) != len(df):
        raise ValueError(f"group_ids has {len(g)} entries for {len(df)} rows")
    if isinstance(representative, str):
        rep = select_representatives(df, g, key_col=key_col, representative=representative).to_numpy()
    else:
        rep = np.asarray(representative, dtype=bool)
        per_group = np.bincount(g[rep], minlength=int(g.max()) + 1 if len(g) else 0)
        present = np.bincount(g, minlength=len(per_group)) > 0
        if len(rep) != len(df) or (per_group[present] != 1).any():
            raise ValueError("a representative mask must mark exactly one row of every group")
    sizes = np.bincount(g) if len(g) else np.zeros(0, dtype=np.int64)
    out = df.loc[rep].copy()
    out_g = g[rep]
    out["n_merged"] = sizes[out_g].astype(np.int64)
    multi_rows = sizes[g] > 1
    if not multi_rows.any():
        return out
    pos = np.flatnonzero(multi_rows)
    # order members: group, representative first, then key order (row order as last tie-break)
    kc = _key_column(df, key_col)
    sub_keys = (pd.factorize(df[kc].astype("string").fillna("").to_numpy()[pos], sort=True)[0]
                if kc is not None else np.zeros(len(pos), dtype=np.int64))
    order = pos[np.lexsort((pos, sub_keys, ~rep[pos], g[pos]))]
    og = g[order]
    bounds = np.flatnonzero(np.diff(og)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(order)]))
    group_of_out = pd.Series(np.arange(len(out)), index=out_g)
    targets = group_of_out.loc[og[starts]].to_numpy()
    for col in list_columns:
        if col not in df.columns:
            continue
        vals = df[col].to_numpy()[order]
        merged = out[col].to_numpy(dtype=object).copy()
        for s, e, tgt in zip(starts, ends, targets):
            seen: dict = {}
            for v in vals[s:e]:
                for item in _iter_list(v):
                    if _is_null(item) or item == "":
                        continue
                    seen.setdefault(item, None)
            merged[tgt] = list(seen)
        out[col] = merged
    for col in any_columns:
        if col not in df.columns:
            continue
        anyv = pd.Series(df[col].fillna(False).astype(bool).to_numpy()).groupby(g).any()
        out[col] = anyv.loc[out_g].to_numpy()
    return out


# ---------------------------------------------------------------------------------------- decontamination

REMOVED_COLUMNS = ["key", "eval_set", "eval_key", "distance"]


def decontaminate(train_hashes: pd.DataFrame, eval_hashes: Mapping[str, pd.DataFrame],
                  hamming_threshold: int = DEFAULT_HAMMING_THRESHOLD, *, hash_col: str = "phash",
                  n_bands: int | None = None, chunk_size: int = 1 << 18,
                  ) -> tuple[pd.DataFrame, dict[str, int]]:
    """Find training images within ``hamming_threshold`` (pHash) of any image of any evaluation set.

    Returns ``(removed, counts)``. ``removed`` has one row per (training image, eval set) with a match:
    ``key`` (and ``shard`` if the training frame has it), ``eval_set``, ``eval_key`` (the closest eval image; ties:
    first in the eval frame), ``eval_shard`` and ``distance``; its index holds the training rows' index labels,
    sorted by training row then eval set. ``counts`` maps every eval set name (also those with no hit) to the
    number of distinct training images it removes. Identical bytes have identical pHashes, so exact copies are
    distance-0 hits. The band index is built once on the concatenated eval side.
    """
    t = _check_threshold(hamming_threshold)
    names = list(eval_hashes)
    counts = {name: 0 for name in names}
    has_shard = "shard" in train_hashes.columns
    cols = ["key", *(["shard"] if has_shard else []), "eval_set", "eval_key", "eval_shard", "distance"]
    empty = pd.DataFrame({c: pd.Series(dtype="int64" if c == "distance" else "object") for c in cols})
    if not names or len(train_hashes) == 0:
        return empty, counts
    frames = [eval_hashes[nm] for nm in names]
    for nm, f in zip(names, frames):
        if hash_col not in f.columns:
            raise KeyError(f"eval set {nm!r} has no {hash_col!r} column")
    e = np.concatenate([as_uint64(f[hash_col], f"{nm}.{hash_col}") for nm, f in zip(names, frames)]) \
        if frames else np.zeros(0, _U64)
    e_set = np.repeat(np.arange(len(names)), [len(f) for f in frames])
    q = as_uint64(train_hashes[hash_col], hash_col)
    qi_all, ei_all, d_all = [], [], []
    for qi, ei, d in iter_cross_pairs(e, q, t, n_bands, chunk_size=chunk_size):
        qi_all.append(qi)
        ei_all.append(ei)
        d_all.append(d)
    if not qi_all:
        return empty, counts
    qi = np.concatenate(qi_all)
    ei = np.concatenate(ei_all)
    d = np.concatenate(d_all).astype(np.int64)
    s = e_set[ei]
    # best (smallest distance, then first eval row) per (train row, eval set)
    order = np.lexsort((ei, d, s, qi))
    qi, ei, d, s = qi[order], ei[order], d[order], s[order]
    first = np.ones(len(qi), dtype=bool)
    first[1:] = (qi[1:] != qi[:-1]) | (s[1:] != s[:-1])
    qi, ei, d, s = qi[first], ei[first], d[first], s[first]
    eval_keys = np.concatenate([f["key"].astype("object").to_numpy() if "key" in f.columns
                                else f.index.astype(str).to_numpy(dtype=object) for f in frames])
    eval_shards = np.concatenate([f["shard"].astype("object").to_numpy() if "shard" in f.columns
                                  else np.full(len(f), None, dtype=object) for f in frames])
    removed = pd.DataFrame({
        "key": train_hashes["key"].astype("object").to_numpy()[qi] if "key" in train_hashes.columns
        else train_hashes.index.astype(str).to_numpy(dtype=object)[qi],
        **({"shard": train_hashes["shard"].astype("object").to_numpy()[qi]} if has_shard else {}),
        "eval_set": np.asarray(names, dtype=object)[s],
        "eval_key": eval_keys[ei],
        "eval_shard": eval_shards[ei],
        "distance": d,
    }, index=train_hashes.index[qi])
    for k, c in zip(*np.unique(s, return_counts=True)):
        counts[names[k]] = int(c)
    log.info("decontamination (t=%d): %s", t, counts)
    return removed, counts


# ------------------------------------------------------------------------------------ the rule's whole job


def dedup_decontaminate(train: pd.DataFrame, eval_hashes: Mapping[str, pd.DataFrame],
                        hamming_threshold: int = DEFAULT_HAMMING_THRESHOLD,
                        decontam_threshold: int | None = None, *,
                        representative: Literal["largest", "first"] = "largest",
                        ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Decontaminate then deduplicate a hashed training set; returns ``(keep, removed, counts)``.

    * ``removed``: every training image within ``decontam_threshold`` (default: ``hamming_threshold``) of an eval
      image (``reason="eval_match"``), plus every other member of its duplicate group
      (``reason="duplicate_of_eval_match"``: a near-copy of a contaminated image is treated as contaminated too,
      because pHash distances are not transitive). Columns ``key, shard, eval_set, eval_key, eval_shard,
      distance, reason, via_key, via_shard`` (``via_*``: the member that matched; ``distance`` is its distance).
    * ``keep``: the remaining images with ``group_id`` and ``representative`` (one True per group: train on
      those; the others are duplicates whose metadata :func:`merge_duplicates` folds into the representative).
    * ``counts``: JSON-ready summary (per eval set: direct and total removals).
    """
    t = _check_threshold(hamming_threshold)
    td = t if decontam_threshold is None else _check_threshold(decontam_threshold)
    train = train.reset_index(drop=True)
    groups = find_duplicate_groups(train, t)
    direct, per_set_direct = decontaminate(train, eval_hashes, td)
    removed_parts = []
    per_set_total = dict.fromkeys(eval_hashes, 0)
    if len(direct):
        d = direct.copy()
        d["train_row"] = d.index.to_numpy()
        d["group_id"] = groups.to_numpy()[d["train_row"].to_numpy()]
        # the closest match of each contaminated group per eval set propagates to the other members
        best = d.sort_values(["group_id", "eval_set", "distance", "train_row"]).drop_duplicates(
            ["group_id", "eval_set"])
        members = pd.DataFrame({"train_row": np.arange(len(train)), "group_id": groups.to_numpy()})
        prop = members.merge(best[["group_id", "eval_set", "eval_key", "eval_shard", "distance", "train_row"]]
                             .rename(columns={"train_row": "via_row"}), on="group_id")
        prop = prop.merge(d[["train_row", "eval_set"]].assign(_direct=True), on=["train_row", "eval_set"],
                          how="left")
        prop = prop[prop["_direct"].isna()].drop(columns="_direct")
        d["via_row"] = d["train_row"]
        d["reason"] = "eval_match"
        prop["reason"] = "duplicate_of_eval_match"
        allr = pd.concat([d[prop.columns.tolist()], prop], ignore_index=True)
        allr = allr.sort_values(["train_row", "eval_set"], kind="stable")
        tr, via = allr["train_row"].to_numpy(), allr["via_row"].to_numpy()
        out = pd.DataFrame({
            "key": train["key"].astype("object").to_numpy()[tr],
            "shard": (train["shard"].astype("object").to_numpy()[tr] if "shard" in train.columns else None),
            "eval_set": allr["eval_set"].to_numpy(), "eval_key": allr["eval_key"].to_numpy(),
            "eval_shard": allr["eval_shard"].to_numpy(), "distance": allr["distance"].to_numpy(np.int64),
            "reason": allr["reason"].to_numpy(),
            "via_key": train["key"].astype("object").to_numpy()[via],
            "via_shard": (train["shard"].astype("object").to_numpy()[via] if "shard" in train.columns else None),
        })
        if "uid" in train.columns:
            out.insert(1, "uid", train["uid"].astype("object").to_numpy()[tr])
        removed_parts.append(out)
        for nm, c in allr.groupby("eval_set")["train_row"].nunique().items():
            per_set_total[nm] = int(c)
        contaminated = np.zeros(len(train), dtype=bool)
        contaminated[tr] = True
    else:
        contaminated = np.zeros(len(train), dtype=bool)
    removed = (removed_parts[0] if removed_parts else
               pd.DataFrame(columns=["key", "shard", "eval_set", "eval_key", "eval_shard", "distance", "reason",
                                     "via_key", "via_shard"]))
    keep = train.loc[~contaminated].copy()
    keep["group_id"] = groups.to_numpy()[~contaminated]
    keep["representative"] = select_representatives(keep, keep["group_id"], representative=representative)
    keep = keep.reset_index(drop=True)
    n_groups_all = int(groups.nunique())
    counts = {
        "hamming_threshold": t,
        "decontam_threshold": td,
        "n_images": int(len(train)),
        "n_exact_duplicate_images": int(len(train) - train["sha256"].nunique()) if "sha256" in train else None,
        "n_groups": n_groups_all,
        "n_contaminated": int(contaminated.sum()),
        "n_kept": int(len(keep)),
        "n_representatives": int(keep["representative"].sum()),
        "n_duplicates_dropped": int(len(keep) - keep["representative"].sum()),
        "contaminated_direct": {k: int(v) for k, v in per_set_direct.items()},
        "contaminated_total": per_set_total,
        "eval_set_sizes": {k: int(len(v)) for k, v in eval_hashes.items()},
    }
    return keep, removed, counts


def merge_url_rows(urls: pd.DataFrame, keep: pd.DataFrame, removed: pd.DataFrame | None = None) -> pd.DataFrame:
    """``urls.parquet`` after dedup: each duplicate group of downloaded images merged (:func:`merge_duplicates`)
    into the row of the sample ``keep`` marks ``representative``; rows of contaminated samples (``removed.uid``)
    dropped; rows whose image was not downloaded passed through unchanged. Needs ``uid`` in ``keep`` (img2dataset
    ``save_additional_columns=["uid"]``). Adds ``n_merged``.
    """
    if "uid" not in keep.columns or (len(keep) and keep["uid"].isna().all()):
        raise ValueError("merging urls.parquet needs the samples' uid (img2dataset save_additional_columns=['uid'])")
    if "uid" not in urls.columns:
        raise KeyError("urls.parquet has no 'uid' column")
    k = keep.dropna(subset=["uid"]).drop_duplicates("uid")
    gid = pd.Series(k["group_id"].to_numpy(np.int64), index=k["uid"].astype(str).to_numpy())
    bad = set() if removed is None or "uid" not in removed.columns else set(removed["uid"].dropna().astype(str))
    rows = urls[~urls["uid"].astype(str).isin(bad)].reset_index(drop=True)
    uid = rows["uid"].astype(str)
    g = gid.reindex(uid.to_numpy()).to_numpy()
    loose = np.isnan(g)                              # not downloaded: a group of its own
    base = int(np.nanmax(g)) + 1 if (~loose).any() else 0
    g = np.where(loose, base + np.cumsum(loose) - 1, g).astype(np.int64)
    mask = uid.isin(set(k.loc[k["representative"].astype(bool), "uid"].astype(str))).to_numpy() | loose
    has = np.zeros(int(g.max()) + 1 if len(g) else 0, dtype=bool)
    has[g[mask]] = True
    orphan = ~has[g]                                 # representative's uid missing from urls: first member by uid
    if orphan.any():
        fb = select_representatives(rows.loc[orphan], g[orphan], key_col="uid", representative="first")
        mask[np.flatnonzero(orphan)[fb.to_numpy()]] = True
    return merge_duplicates(rows, g, key_col="uid", representative=mask).reset_index(drop=True)


def _eval_set_paths(snakemake) -> dict[str, str]:
    """Eval sets as name -> root: ``params.eval_sets`` (dict) wins; else ``input.eval_sets`` (dict-like, or a list
    named by ``params.eval_set_names`` or by each path's basename)."""
    params = snakemake.params
    if hasattr(params, "eval_sets") and isinstance(getattr(params, "eval_sets"), Mapping):
        return {str(k): str(v) for k, v in params.eval_sets.items()}
    raw = snakemake.input.get("eval_sets", []) if hasattr(snakemake.input, "get") else getattr(
        snakemake.input, "eval_sets", [])
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    paths = [raw] if isinstance(raw, (str, os.PathLike)) else list(raw)
    names = list(getattr(params, "eval_set_names", None) or [Path(p).name for p in paths])
    if len(names) != len(paths):
        raise ValueError(f"params.eval_set_names has {len(names)} names for {len(paths)} eval set paths")
    if len(set(names)) != len(names):
        raise ValueError(f"eval set names must be unique, got {names}")
    return dict(zip(map(str, names), map(str, paths)))


def main(snakemake) -> None:
    """Rule ``dedup_decontaminate``.

    input:  ``chunks`` (img2dataset webdataset output dirs holding ``*.tar``), ``eval_sets`` (see
            :func:`_eval_set_paths`), optional ``urls`` (urls.parquet, needed for output ``urls``).
    params: ``hamming_threshold`` (int), optional ``decontam_threshold``, ``representative``, ``on_bad_shard``,
            ``eval_set_names``.
    output: ``keep`` (parquet: key, shard, sha256, phash, dhash, width, height, uid, group_id, representative),
            ``removed`` (parquet, see :func:`dedup_decontaminate`), ``counts`` (json); optional ``drop`` (parquet
            ``uid, key, shard, reason``: every sample not to ship, the input of ``build_shards``' ``drop``),
            ``urls`` (urls.parquet with each group merged into its representative's row), ``eval_hashes``.
    """
    from _helpers import configure_logging, write_json, write_parquet

    configure_logging(snakemake)
    p = snakemake.params
    t = int(p.hamming_threshold)
    td = getattr(p, "decontam_threshold", None)
    td = None if td is None else int(td)
    tars = [str(x) for c in snakemake.input.chunks for x in sorted(Path(c).glob("*.tar"))]
    if not tars:
        raise FileNotFoundError(f"no *.tar in the download chunk dirs {list(snakemake.input.chunks)}")
    threads = max(int(snakemake.threads), 1)
    train = hash_webdataset_shards(tars, processes=threads,
                                   on_bad_shard=getattr(p, "on_bad_shard", "raise") or "raise")
    # img2dataset writes a tar's members in the order its downloads finish: sort by (shard, key), which follow the
    # URL list, so that groups, representatives and every output are the same on every run
    attrs = dict(train.attrs)
    train = train.sort_values(["shard", "key"], kind="stable").reset_index(drop=True)
    train.attrs.update(attrs)
    eval_paths = _eval_set_paths(snakemake)
    if not eval_paths:
        log.warning("no evaluation set given: decontamination is skipped, only deduplication runs")
    evals = {nm: hash_eval_set(path, processes=threads) for nm, path in eval_paths.items()}
    keep, removed, counts = dedup_decontaminate(train, evals, t, td,
                                                representative=getattr(p, "representative", "largest") or "largest")
    counts["n_corrupt"] = len(train.attrs.get("corrupt", []))
    counts["corrupt_examples"] = train.attrs.get("corrupt", [])[:20]
    counts["bad_shards"] = train.attrs.get("bad_shards", [])
    counts["n_shards"] = len(tars)
    for c in ("key", "sha256"):
        keep[c] = keep[c].astype("object")
    keep["shard"] = keep["shard"].astype("object")
    write_parquet(keep, snakemake.output.keep)
    write_parquet(removed, snakemake.output.removed)
    out = snakemake.output
    if "drop" in out.keys():
        dup = keep.loc[~keep["representative"], [c for c in ("uid", "key", "shard") if c in keep.columns]]
        drop = pd.concat([dup.assign(reason="duplicate"),
                          removed.drop_duplicates(["key", "shard"])[
                              [c for c in ("uid", "key", "shard") if c in removed.columns]].assign(
                              reason="eval_contamination")], ignore_index=True)
        write_parquet(drop, out.drop)
    if "urls" in out.keys():
        merged = merge_url_rows(pd.read_parquet(snakemake.input.urls), keep, removed)
        write_parquet(merged, out.urls)
        counts["n_url_rows_out"] = int(len(merged))
    if "eval_hashes" in out.keys():
        eh = pd.concat([f.assign(eval_set=nm) for nm, f in evals.items()], ignore_index=True)
        eh["key"] = eh["key"].astype("object")
        eh["sha256"] = eh["sha256"].astype("object")
        eh["shard"] = eh["shard"].astype("object")
        write_parquet(eh, out.eval_hashes)
    write_json(counts, snakemake.output.counts)
    log.info("dedup_decontaminate: %s", {k: v for k, v in counts.items() if not isinstance(v, (list, dict))})


if __name__ == "__main__":
    from _helpers import rule_entry

    rule_entry(main, globals())
