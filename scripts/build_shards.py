"""Write the final training/validation shards from the downloaded chunks (rule ``build_shards``).

Each downloaded sample is joined with its ``urls.parquet`` row by ``uid`` and rewritten once as
``<uid>.jpg`` + ``<uid>.txt`` (one alt text, else the first query's text) + ``<uid>.json`` (provenance:
``uid, url, query_ids, alt_texts, qids, is_living, licence``). Samples listed in the optional ``drop`` table
(duplicates and eval contamination) are skipped; an optional ``subset`` filter keeps, e.g., LivingThings images
only (an image stays if at least one living query found it). A seeded validation split is held out.
Also writes ``sizes.json`` per split (open_clip's sample counts) and a download status table.
"""

import io
import json
import logging
import random
import tarfile
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from _helpers import configure_logging, write_json, write_parquet

log = logging.getLogger("entitynet.build_shards")


def iter_download_samples(chunk_dirs: list[str]):
    """Yield (uid, jpg bytes) for every successful sample in img2dataset webdataset output dirs."""
    for d in chunk_dirs:
        for tar_path in sorted(Path(d).glob("*.tar")):
            with tarfile.open(tar_path) as tf:
                members: dict[str, dict[str, tarfile.TarInfo]] = {}
                for m in tf.getmembers():
                    key, _, ext = m.name.rpartition(".")
                    members.setdefault(key, {})[ext] = m
                for key, parts in members.items():
                    if "jpg" not in parts or "json" not in parts:
                        continue
                    meta = json.loads(tf.extractfile(parts["json"]).read())
                    yield meta["uid"], tf.extractfile(parts["jpg"]).read()


def status_table(chunk_dirs: list[str]) -> pd.DataFrame:
    """Per-status counts from img2dataset's per-shard parquet (every input row, failures included)."""
    frames = [pd.read_parquet(p, columns=["status", "error_message"]) for d in chunk_dirs
              for p in sorted(Path(d).glob("[0-9]*.parquet"))]
    if not frames:
        return pd.DataFrame(columns=["status", "error_message", "count"])
    df = pd.concat(frames, ignore_index=True)
    df["error_message"] = df["error_message"].fillna("")
    return df.groupby(["status", "error_message"]).size().rename("count").reset_index().sort_values(
        "count", ascending=False)


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tf.addfile(info, io.BytesIO(data))


def write_split(samples: list[tuple[str, bytes, dict, str]], out_dir: Path, per_shard: int) -> dict[str, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    for start in range(0, max(len(samples), 1), per_shard):
        part = samples[start:start + per_shard]
        if not part:
            break
        name = f"{start // per_shard:05d}.tar"
        tmp = out_dir / f".{name}.tmp"
        with tarfile.open(tmp, "w") as tf:
            for uid, jpg, meta, text in part:
                _add(tf, f"{uid}.jpg", jpg)
                _add(tf, f"{uid}.txt", text.encode())
                _add(tf, f"{uid}.json", json.dumps(meta, ensure_ascii=False).encode())
        tmp.replace(out_dir / name)
        sizes[name] = len(part)
    write_json(sizes, out_dir / "sizes.json")
    return sizes


def build_shards(chunk_dirs: list[str], urls: pd.DataFrame, queries: pd.DataFrame, out_dir: str, val_size: int,
                 per_shard: int, seed: int, drop_uids: set[str] | None = None, subset: str | None = None) -> dict:
    rows = urls.set_index("uid")
    qtext = queries.set_index("query_id")["text"]
    samples = []
    seen: set[str] = set()
    skipped = {"dropped": 0, "subset": 0, "unknown_uid": 0, "repeat": 0}
    for uid, jpg in tqdm(iter_download_samples(chunk_dirs), desc="shards", unit="img"):
        if uid not in rows.index:
            skipped["unknown_uid"] += 1
            continue
        if uid in seen:
            skipped["repeat"] += 1
            continue
        if drop_uids and uid in drop_uids:
            skipped["dropped"] += 1
            continue
        r = rows.loc[uid]
        if subset == "living" and not bool(r["is_living"]):
            skipped["subset"] += 1
            continue
        seen.add(uid)
        alts = [str(a) for a in r["alt_texts"]]
        qids = [str(q) for q in r["query_ids"]]
        text = alts[0] if alts else str(qtext.get(qids[0], "")) if qids else ""
        meta = {"uid": uid, "url": r["url"], "query_ids": qids, "alt_texts": alts, "qids": [str(q) for q in r["qids"]],
                "is_living": bool(r["is_living"]), "licence": r["licence"] if isinstance(r["licence"], str) else None}
        samples.append((uid, jpg, meta, text))
    if not samples:
        raise RuntimeError("no downloaded sample survived; nothing to train on")
    samples.sort(key=lambda s: s[0])
    random.Random(seed).shuffle(samples)
    n_val = min(val_size, max(len(samples) // 5, 1)) if val_size else 0
    val, train = samples[:n_val], samples[n_val:]
    out = Path(out_dir)
    summary = {"train": write_split(train, out / "train", per_shard), "skipped": skipped,
               "n_train": len(train), "n_val": len(val)}
    if val:
        summary["val"] = write_split(val, out / "val", per_shard)
    log.info("shards: %d train, %d val, skipped %s", len(train), len(val), skipped)
    return summary


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    urls = pd.read_parquet(snakemake.input.urls)
    queries = pd.read_parquet(snakemake.input.queries)
    drop = None
    if snakemake.input.get("drop"):
        drop = set(pd.read_parquet(snakemake.input.drop)["uid"])
    chunk_dirs = list(snakemake.input.chunks)
    summary = build_shards(chunk_dirs, urls, queries, snakemake.output.shards_dir, int(p.val_size),
                           int(p.samples_per_shard), int(p.seed), drop, p.subset)
    write_parquet(status_table(chunk_dirs), snakemake.output.status)
    write_json(summary, snakemake.output.summary)


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821
