"""Image deduplication and evaluation-set decontamination with perceptual hashes (docs/PAPER_NOTES.md §9).

The authors' dedup code is unreleased ("dedup within the training set ... and dedup against downstream evaluation
sets"; method and thresholds unknown). This module is our documented choice:

* **Hashes**: sha256, pHash and dHash of the stored images (``lib.data.image_hash``).
* **Duplicate groups** (:func:`find_duplicate_groups`): same sha256, or same pHash, or pHash Hamming distance
  <= threshold, closed transitively with a vectorised union-find. Near pairs come from an exact band multi-index
  (``lib.data.hamming_index``), never from all pairs.
* **Decontamination** (:func:`decontaminate`): the same band keys built on the (smaller) eval side; training hashes
  are streamed through them in chunks (``searchsorted``).
* **Merge** (:func:`merge_duplicates`): one row per group, the way the paper merges images found by several queries
  (docs/PAPER_NOTES.md §8): a representative's scalar columns, the union of the list columns, ``is_living`` = any.

The whole job of rule ``dedup_decontaminate`` over downloaded tars: :func:`dedup_downloads` (the rule entry
``scripts/dedup_decontaminate.py`` resolves the eval roots and writes the outputs).
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from lib.data.hamming_index import UnionFind, as_uint64, check_threshold, iter_cross_pairs, iter_near_pairs
from lib.data.image_hash import HASH_COLUMNS, hash_eval_set, hash_webdataset_shards

log = logging.getLogger("entitynet.image_dedup")

LIST_COLUMNS: tuple[str, ...] = ("urls", "query_ids", "alt_texts", "page_urls", "qids", "kinds", "backends")
ANY_COLUMNS: tuple[str, ...] = ("is_living",)


# ------------------------------------------------------------------------------------------------- dedup


def find_duplicate_groups(df: pd.DataFrame, hamming_threshold: int, *,
                          hash_col: str = "phash", sha_col: str | None = "sha256",
                          n_bands: int | None = None) -> pd.Series:
    """Group exact and near-duplicate images; returns ``group_id`` (int64) aligned with ``df.index``.

    Rows are in one group when connected by any chain of: equal ``sha_col`` (skipped if None or absent; null
    sha256 never matches), equal ``hash_col``, or ``hash_col`` Hamming distance ``<= hamming_threshold``.
    Group ids are dense ``0..G-1`` numbered by the group's first row, so a row that duplicates nothing has a group
    of its own. Near pairs are searched among the distinct pHash values only (see module docstring); memory is
    O(rows), time ~ (number of band subsets) x sort of the distinct hashes plus the candidate pairs.
    """
    t = check_threshold(hamming_threshold)
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


def select_representatives(df: pd.DataFrame, group_ids: pd.Series | np.ndarray, *,
                           representative: Literal["largest", "first"], key_col: str | None = None) -> pd.Series:
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


def merge_duplicates(df: pd.DataFrame, group_ids: pd.Series | np.ndarray, *,
                     representative: Literal["largest", "first"] | np.ndarray, key_col: str | None = None,
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
                  hamming_threshold: int, *, hash_col: str = "phash",
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
    t = check_threshold(hamming_threshold)
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
        if frames else np.zeros(0, np.uint64)
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


# -------------------------------------------------------------------- decontaminate, then deduplicate, one set


def dedup_decontaminate(train: pd.DataFrame, eval_hashes: Mapping[str, pd.DataFrame],
                        hamming_threshold: int, decontam_threshold: int | None = None, *,
                        representative: Literal["largest", "first"]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
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
    t = check_threshold(hamming_threshold)
    td = t if decontam_threshold is None else check_threshold(decontam_threshold)
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


# ------------------------------------------------------------------------------------ the rule's whole job


@dataclass
class DedupResult:
    """What :func:`dedup_downloads` found; the frames are the outputs of rule ``dedup_decontaminate``.

    ``keep`` (key, shard, sha256, phash, dhash, width, height, uid, group_id, representative), ``removed`` (see
    :func:`dedup_decontaminate`), ``drop`` (``uid, key, shard, reason``: every sample not to ship, the input of
    ``build_shards``' ``drop``), ``eval_hashes`` (the eval images' hashes with ``eval_set``), ``counts``
    (JSON-ready), ``urls`` (urls.parquet with each group merged into its representative's row; None without urls).
    """

    keep: pd.DataFrame
    removed: pd.DataFrame
    drop: pd.DataFrame
    eval_hashes: pd.DataFrame
    counts: dict
    urls: pd.DataFrame | None = None


def drop_table(keep: pd.DataFrame, removed: pd.DataFrame) -> pd.DataFrame:
    """``uid, key, shard, reason``: the non-representative members of ``keep`` (``duplicate``) and every sample of
    ``removed`` once (``eval_contamination``)."""
    dup = keep.loc[~keep["representative"], [c for c in ("uid", "key", "shard") if c in keep.columns]]
    contaminated = removed.drop_duplicates(["key", "shard"])[[c for c in ("uid", "key", "shard")
                                                                if c in removed.columns]]
    return pd.concat([dup.assign(reason="duplicate"), contaminated.assign(reason="eval_contamination")],
                     ignore_index=True)


def _eval_hash_table(evals: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every eval set's hashes in one frame with an ``eval_set`` column (string columns as ``object``)."""
    if not evals:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in (*HASH_COLUMNS, "eval_set")})
    eh = pd.concat([f.assign(eval_set=nm) for nm, f in evals.items()], ignore_index=True)
    for c in ("key", "sha256", "shard"):
        eh[c] = eh[c].astype("object")
    return eh


def dedup_downloads(download_dirs: Sequence[str | os.PathLike], eval_sets: Mapping[str, str | os.PathLike],
                    hamming_threshold: int, decontam_threshold: int | None, *,
                    representative: Literal["largest", "first"], processes: int = 1,
                    on_bad_shard: Literal["raise", "skip"] = "raise",
                    urls: pd.DataFrame | None = None) -> DedupResult:
    """Hash every ``*.tar`` of the img2dataset output folders ``download_dirs`` and every eval set
    (``{name: root}``, :func:`hash_eval_set`), then :func:`dedup_decontaminate`; with ``urls`` (urls.parquet),
    also the merged table (:func:`merge_url_rows`). Raises ``FileNotFoundError`` when the folders hold no tar.
    """
    tars = [str(x) for d in download_dirs for x in sorted(Path(d).glob("*.tar"))]
    if not tars:
        raise FileNotFoundError(f"no *.tar in the download chunk dirs {[str(d) for d in download_dirs]}")
    processes = max(int(processes), 1)
    train = hash_webdataset_shards(tars, processes=processes, on_bad_shard=on_bad_shard)
    # img2dataset writes a tar's members in the order its downloads finish: sort by (shard, key), which follow the
    # URL list, so that groups, representatives and every output are the same on every run
    attrs = dict(train.attrs)
    train = train.sort_values(["shard", "key"], kind="stable").reset_index(drop=True)
    train.attrs.update(attrs)
    if not eval_sets:
        log.warning("no evaluation set given: decontamination is skipped, only deduplication runs")
    evals = {str(nm): hash_eval_set(path, processes=processes) for nm, path in eval_sets.items()}
    keep, removed, counts = dedup_decontaminate(train, evals, hamming_threshold, decontam_threshold,
                                                representative=representative)
    counts["n_corrupt"] = len(train.attrs.get("corrupt", []))
    counts["corrupt_examples"] = train.attrs.get("corrupt", [])[:20]
    counts["bad_shards"] = train.attrs.get("bad_shards", [])
    counts["n_shards"] = len(tars)
    for c in ("key", "sha256", "shard"):
        keep[c] = keep[c].astype("object")
    merged = None
    if urls is not None:
        merged = merge_url_rows(urls, keep, removed)
        counts["n_url_rows_out"] = int(len(merged))
    return DedupResult(keep=keep, removed=removed, drop=drop_table(keep, removed),
                       eval_hashes=_eval_hash_table(evals), counts=counts, urls=merged)
