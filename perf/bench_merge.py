"""Benchmark of scripts/lib/search/merge.py (rule ``merge_search``) on synthetic search hits.

    .venv/bin/python perf/bench_merge.py                    # 10M hit rows (issue 4's scale), a few minutes
    .venv/bin/python perf/bench_merge.py --rows 1000000     # develop at 1M
    .venv/bin/python perf/bench_merge.py --rows 1000000 --keep --workdir /tmp/bm   # keep the files

Steps, each in its own child interpreter so that ``ru_maxrss`` is that step's own peak:

1. ``generate``: ``--files`` hit chunk files (``search/{backend}/chunk_NNNNN.parquet`` as rule ``search`` writes
   them, alternating two backends) and a ``queries.parquet`` of ``rows/25`` queries. Image URLs look like CDN
   photo URLs (~100 characters: host, dated upload path, slug words, numeric id); ``--dup`` of the rows
   (default 30 %) repeat an image URL already used by another row (another query, backend, rank), and those
   repeats are spelled differently where normalisation must fold them (5 % of all rows carry a ``#fragment``).
   Every 50th image carries ``utm_`` tracking parameters and every 200th an explicit ``:443`` port: these go
   through the Python fallback of the normaliser. Page URLs, alt texts (20 % null, 10 % empty), sizes (10 % null)
   and licences (90 % null) are filled in.
2. ``merge``: ``lib.search.merge.merge_files`` exactly as the rule's ``main`` calls it (default partition size), with
   the temporary partitions next to the output. Reports wall and CPU time and peak RSS
   (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), and checks the result: one row per generated image
   (uids unique, count equal to the number of distinct images), the output schema, and the total number of
   (image, query) pairs against the generator's ground truth, so a fast but wrong merge cannot pass.

Results go to stdout as JSON lines; ``perf/README_merge.md`` records a run.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from lib.search import merge as ms  # noqa: E402

BACKENDS = ("serpapi_google", "serpapi_bing")
KINDS = ["wd-noun-world", "wd-noun-living", "wordnet-noun-living", "wd-attrnoun-world", "wd-attrnoun-living",
         "wd-attr-world", "wd-attr-living"]
WORDS = ("red fox rabbit oak maple hammer violin kettle tulip heron bridge lantern meadow copper granite sparrow "
         "wooden running sleeping blue green vintage garden river mountain beetle orchid saddle anvil compass "
         "tractor lemon walnut pelican ferry lighthouse marble velvet harbor falcon spruce").split()


def _s(a) -> pa.Array:
    return pc.cast(pa.array(a), pa.string())


def _words(ix: np.ndarray) -> pa.Array:
    return pc.take(pa.array(WORDS), pa.array(ix % len(WORDS)))


def image_urls(i: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Raw URL of image ``i`` (deterministic in i), with a per-row ``#fragment`` on 5 % of the rows."""
    hosts = _s(np.char.add(np.char.add("cdn", (i % 997).astype(str)), ".images-"))
    tld = pc.take(pa.array([".com", ".net", ".org", ".co.uk", ".de"]), pa.array(i % 5))
    port = pc.if_else(pa.array(i % 200 == 2), ":443", "")
    year = _s(2005 + i % 19)
    month = _s(np.char.zfill((1 + i % 12).astype(str), 2))
    query = pc.if_else(pa.array(i % 50 == 0), "?utm_source=feed&w=800", pc.if_else(pa.array(i % 7 == 0), "?w=1024", ""))
    frag = pc.if_else(pa.array(rng.random(len(i)) < 0.05), "#gallery", "")
    return pc.binary_join_element_wise(
        "https://", hosts, _words(i // 7), tld, port, "/wp-content/uploads/", year, "/", month, "/",
        _words(i * 31 + 3), "-", _words(i * 17 + 1), "-", _words(i // 3), "-", _s(i), ".jpg", query, frag, "")


def generate(workdir: Path, rows: int, files: int, dup: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n_img = int(round(rows * (1 - dup)))
    n_q = max(10, rows // 25)
    qid = ms.uid_hex(rng.integers(0, 2**63, n_q, dtype=np.int64).astype(np.uint64))
    kind_ix = rng.integers(0, len(KINDS), n_q)
    qids = pa.ListArray.from_arrays(
        pa.array(np.r_[0, np.cumsum(~np.isin(kind_ix, (5, 6)))].astype(np.int32)),
        _s(np.char.add("Q", rng.integers(1, 10**7, int((~np.isin(kind_ix, (5, 6))).sum())).astype(str))))
    kinds = pc.take(pa.array(KINDS), pa.array(kind_ix))
    queries = pa.table({"query_id": qid, "text": _words(np.arange(n_q)), "kind": kinds,
                        "qids": qids, "is_living": pc.match_substring(kinds, "living")})
    workdir.mkdir(parents=True, exist_ok=True)
    pq.write_table(queries, workdir / "queries.parquet")
    # every image once, then duplicates of random images; rows in random order over the files
    img = np.concatenate([np.arange(n_img), rng.integers(0, n_img, rows - n_img)])
    rng.shuffle(img)
    qrow = rng.integers(0, n_q, rows)
    pairs = len(np.unique(img.astype(np.int64) * n_q + qrow))  # ground truth: distinct (image, query) pairs
    paths = []
    for f, part in enumerate(np.array_split(np.arange(rows), files)):
        i = img[part]
        n = len(part)
        alt = pc.binary_join_element_wise(_words(i), _words(i // 5 + rng.integers(0, 3, n)), "photo of",
                                          _words(qrow[part]), " ")
        u = rng.random(n)
        alt = pc.if_else(pa.array(u < 0.2), pa.scalar(None, pa.string()), pc.if_else(pa.array(u < 0.3), "", alt))
        page = pc.binary_join_element_wise("https://www.", _words(i // 11), "-blog.com/", _words(i // 13), "/",
                                           _words(i), "-", _s(i // 3), ".html", "")
        size = rng.integers(200, 4000, (2, n))
        backend = BACKENDS[f % 2]
        t = pa.table({
            "query_id": pc.take(qid, pa.array(qrow[part])), "backend": pa.array([backend] * n),
            "rank": pa.array(rng.integers(0, 60, n)), "image_url": image_urls(i, rng), "page_url": page,
            "alt_text": alt,
            "width": pa.array(size[0], mask=rng.random(n) < 0.1), "height": pa.array(size[1], mask=rng.random(n) < 0.1),
            "licence": pa.array(np.where(rng.random(n) < 0.1, "by-sa", None)).cast(pa.string()),
        })
        p = workdir / "search" / backend / f"chunk_{f:05d}.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, p)
        paths.append(str(p))
    info = {"rows": rows, "files": files, "images": n_img, "queries": n_q, "image_query_pairs": int(pairs),
            "hit_bytes_on_disk": sum(os.path.getsize(p) for p in paths), "paths": paths}
    (workdir / "truth.json").write_text(json.dumps(info))
    return info


def merge(workdir: Path, seed: int) -> dict:
    truth = json.loads((workdir / "truth.json").read_text())
    out = workdir / "urls.parquet"
    t0, c0 = time.monotonic(), time.process_time()
    stats = ms.merge_files(truth["paths"], str(workdir / "queries.parquet"), str(out), seed)
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    res = {"step": "merge", "rows": truth["rows"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
           "peak_rss_mib": round(peak), "urls": stats["urls"], "out_bytes": out.stat().st_size}
    # verification (after the measurement; reads two columns only)
    assert pq.read_schema(out).equals(ms.OUT_SCHEMA), "output schema differs from the contract"
    t = pq.read_table(out, columns=["uid", "query_ids"])
    assert t.num_rows == truth["images"], f"{t.num_rows} rows, expected {truth['images']} distinct images"
    assert len(pc.unique(t["uid"])) == t.num_rows, "uids not unique"
    n_pairs = pc.sum(pc.list_value_length(t["query_ids"])).as_py()
    assert n_pairs == truth["image_query_pairs"], f"{n_pairs} (image, query) pairs, expected {truth['image_query_pairs']}"
    res["verified"] = True
    return res


def _child(step: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", step, "--rows", str(args.rows), "--files", str(args.files),
           "--dup", str(args.dup), "--seed", str(args.seed), "--workdir", str(args.workdir)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{step} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=100, help="hit chunk files (rule search outputs)")
    ap.add_argument("--dup", type=float, default=0.3, help="share of rows repeating an already used image URL")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/entitynet_bench_merge"))
    ap.add_argument("--keep", action="store_true", help="keep the generated files and the output")
    ap.add_argument("--child", choices=["generate", "merge"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "generate":
        t0 = time.monotonic()
        info = generate(args.workdir, args.rows, args.files, args.dup, args.seed)
        info.pop("paths")
        print(json.dumps({"step": "generate", "wall_s": round(time.monotonic() - t0, 1), **info}))
        return
    if args.child == "merge":
        import logging
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
        print(json.dumps(merge(args.workdir, args.seed)))
        return
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    try:
        for step in ("generate", "merge"):
            print(json.dumps(_child(step, args)), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
