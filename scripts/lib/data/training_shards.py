"""The final training/validation shards from the downloaded chunks (rule ``build_shards``).

Each downloaded sample (first pass and ``retry/`` pass of every chunk, see ``lib.data.download_outcomes``) is
joined with its ``urls.parquet`` row by ``uid`` and rewritten once (``lib.data.shard_writer``, webdataset's writer)
as ``<uid>.jpg`` + ``<uid>.txt`` (one alt text, else the first query's text) + ``<uid>.json`` (provenance: ``uid,
url, query_ids, alt_texts, qids, is_living, licence``). The
``urls`` input is normally the deduplicated table of ``dedup_decontaminate`` (duplicate groups merged into their
representative's row: union of queries and alt texts). Samples listed in the optional ``drop`` table (duplicates
and eval contamination) are skipped; an optional ``subset`` filter keeps, e.g., LivingThings images only (an image
stays if at least one living query found it). A seeded validation split is held out.

Also writes ``sizes.json`` per split (open_clip's sample counts), a shard index (``uid, split, shard``: what the
dataset card reads) and the download status table: every input row counted once by its final status
(``status, reason, error_message, retried, count``; ``reason`` is :func:`lib.data.download_outcomes.failure_reason`).
"""

import hashlib
import json
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from lib.data.download_outcomes import download_dirs, failure_reason, row_outcomes
from lib.data.shard_writer import ShardWriter

log = logging.getLogger("entitynet.build_shards")

SKIP_KEYS = ("dropped", "subset", "unknown_uid", "repeat")
INDEX_COLUMNS = ["uid", "split", "shard"]


def iter_download_samples(chunk_dirs: list[str], keep: set[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield ``(uid, jpg bytes)`` for every successful sample of the chunks (each chunk dir and its ``retry/``).

    Tars are read one at a time; within a tar, samples come in ``uid`` order (img2dataset writes them in download
    completion order, which differs between runs). With ``keep``, only those uids are read.
    """
    for d in download_dirs(chunk_dirs):
        for tar_path in sorted(Path(d).glob("*.tar")):
            with tarfile.open(tar_path) as tf:
                members: dict[str, dict[str, tarfile.TarInfo]] = {}
                for m in tf.getmembers():
                    key, _, ext = m.name.rpartition(".")
                    members.setdefault(key, {})[ext] = m
                found = []
                for key, parts in members.items():
                    if "jpg" not in parts or "json" not in parts:
                        continue
                    uid = json.loads(tf.extractfile(parts["json"]).read())["uid"]
                    if keep is None or uid in keep:
                        found.append((str(uid), parts["jpg"]))
                for uid, member in sorted(found, key=lambda x: x[0]):
                    yield uid, tf.extractfile(member).read()


def status_table(chunk_dirs: list[str]) -> pd.DataFrame:
    """Counts of the final status of every input row of the chunks (a row recovered by the retry pass counts once,
    as ``success`` with ``retried``): columns ``status, reason, error_message, retried, count``."""
    cols = ["status", "reason", "error_message", "retried", "count"]
    rows = row_outcomes(chunk_dirs)
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "count" else "object") for c in cols})
    rows["reason"] = [failure_reason(s, e) for s, e in zip(rows["status"], rows["error_message"])]
    rows["error_message"] = rows["error_message"].astype(str).str.slice(0, 300)
    out = rows.groupby(["status", "reason", "error_message", "retried"]).size().rename("count").reset_index()
    return out.sort_values(["count", "status", "reason"], ascending=[False, True, True], kind="stable")[cols] \
        .reset_index(drop=True)


def split_key(uid: str, seed: int) -> int:
    """Seeded pseudo-random rank of a uid (the validation split takes the smallest)."""
    return int.from_bytes(hashlib.sha256(f"{seed}\t{uid}".encode()).digest()[:8], "big")


def select_samples(chunk_dirs: list[str], urls: pd.DataFrame, drop_uids: set[str] | None = None,
                   subset: str | None = None) -> tuple[list[str], dict[str, int]]:
    """The downloaded uids that go into the shards, from the download parquets alone (no image is read).

    Skipped (counted in the returned dict): uids of ``drop_uids`` (``dropped``), uids with no row in ``urls``
    (``unknown_uid``: e.g. a duplicate merged into its representative's row), uids downloaded twice (``repeat``),
    and with ``subset="living"`` rows with ``is_living`` false (``subset``).
    """
    if subset not in (None, "living"):
        raise ValueError(f"unknown subset {subset!r} (known: living)")
    ok = row_outcomes(chunk_dirs)
    ok = ok.loc[ok["status"] == "success", "uid"].astype(str).tolist()
    living = dict(zip(urls["uid"].astype(str), urls["is_living"].astype(bool))) if subset == "living" else None
    known = set(urls["uid"].astype(str))
    skipped = dict.fromkeys(SKIP_KEYS, 0)
    seen: set[str] = set()
    kept = []
    for uid in ok:
        if uid in seen:
            skipped["repeat"] += 1
            continue
        seen.add(uid)
        if drop_uids and uid in drop_uids:
            skipped["dropped"] += 1
        elif uid not in known:
            skipped["unknown_uid"] += 1
        elif living is not None and not living[uid]:
            skipped["subset"] += 1
        else:
            kept.append(uid)
    return kept, skipped


def build_shards(chunk_dirs: list[str], urls: pd.DataFrame, queries: pd.DataFrame, out_dir: str, val_size: int,
                 per_shard: int, seed: int, drop_uids: set[str] | None = None, subset: str | None = None,
                 ) -> tuple[dict, pd.DataFrame]:
    """Write ``out_dir/train`` and ``out_dir/val`` (+ ``sizes.json``); returns ``(summary, index)``.

    Streaming, in two passes: the kept uids are chosen from img2dataset's parquets (:func:`select_samples`), the
    ``min(val_size, n // 5)`` uids with the smallest seeded :func:`split_key` form the validation split, then the
    tars are read once, in order, and every kept sample is written to its split (memory: one tar's member list).
    Training order follows the download chunks, which follow the seeded shuffle of ``urls.parquet``.
    ``index``: one row per written sample, ``uid, split, shard``.
    """
    kept, skipped = select_samples(chunk_dirs, urls, drop_uids, subset)
    if not kept:
        raise RuntimeError(f"no downloaded sample survived (skipped: {skipped}); nothing to train on")
    n_val = min(val_size, max(len(kept) // 5, 1)) if val_size else 0
    val_uids = set(sorted(kept, key=lambda u: split_key(u, seed))[:n_val])
    keep = set(kept)
    cols = ["url", "alt_texts", "query_ids", "qids", "is_living", "licence"]
    sub = urls[urls["uid"].astype(str).isin(keep)].drop_duplicates("uid")
    rows = {str(u): r for u, r in zip(sub["uid"], sub[cols].itertuples(index=False, name=None))}
    qtext = dict(zip(queries["query_id"].astype(str), queries["text"].astype(str)))
    out = Path(out_dir)
    writers = {"train": ShardWriter(out / "train", per_shard)}
    if n_val:
        writers["val"] = ShardWriter(out / "val", per_shard)
    index: dict[str, list] = {c: [] for c in INDEX_COLUMNS}
    written: set[str] = set()
    for uid, jpg in tqdm(iter_download_samples(chunk_dirs, keep), desc="shards", unit="img", mininterval=10):
        if uid in written:
            continue
        url, alts, qids, ent_qids, is_living, licence = rows[uid]
        alts = [str(a) for a in (alts if alts is not None else [])]
        qids = [str(q) for q in (qids if qids is not None else [])]
        text = alts[0] if alts else qtext.get(qids[0], "") if qids else ""
        meta = {"uid": uid, "url": url, "query_ids": qids, "alt_texts": alts,
                "qids": [str(q) for q in (ent_qids if ent_qids is not None else [])],
                "is_living": bool(is_living), "licence": licence if isinstance(licence, str) else None}
        split = "val" if uid in val_uids else "train"
        shard = writers[split].write(uid, jpg, meta, text)
        written.add(uid)
        for c, v in zip(INDEX_COLUMNS, (uid, split, shard)):
            index[c].append(v)
    missing = keep - written
    if missing:
        raise RuntimeError(f"{len(missing)} sample(s) listed as downloaded have no image in the tars, e.g. "
                           f"{sorted(missing)[:3]}; re-run the download chunk(s)")
    sizes = {split: w.close() for split, w in writers.items()}
    n_train, n_val_written = sum(sizes["train"].values()), sum(sizes.get("val", {}).values())
    summary = {"train": sizes["train"], "skipped": skipped, "n_train": n_train, "n_val": n_val_written}
    if "val" in sizes:
        summary["val"] = sizes["val"]
    log.info("shards: %d train, %d val, skipped %s", n_train, n_val_written, skipped)
    return summary, pd.DataFrame(index, columns=INDEX_COLUMNS)


def download_counts(status: pd.DataFrame) -> dict:
    """The ``download`` entry of the shards summary from :func:`status_table`: input rows, successes, and the
    successes recovered by the retry pass."""
    success = status["status"] == "success"
    return {"rows": int(status["count"].sum()), "successes": int(status.loc[success, "count"].sum()),
            "recovered_by_retry": int(status.loc[success & status["retried"], "count"].sum())}
