"""The streaming, partitioned merge (scripts/lib/search/merge.py) against a plain pandas reference implementation."""
import hashlib
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.search import merge as ms


# --- reference: the original whole-frame pandas merge (obviously correct, too slow and big at 10M rows) ---------
def _uniq(series):
    return list(dict.fromkeys(x for x in series if isinstance(x, str) and x))


def reference_merge(hits: pd.DataFrame, queries: pd.DataFrame) -> dict[str, dict]:
    q = queries.set_index("query_id")
    h = hits.copy()
    h["norm"] = h["image_url"].map(ms.normalise_url)
    h["kind"] = h["query_id"].map(q["kind"])
    h["is_living"] = h["query_id"].map(q["is_living"]).fillna(False).astype(bool)
    h["qids"] = h["query_id"].map(q["qids"]).map(lambda v: list(v) if isinstance(v, (list, np.ndarray)) else [])
    h = h.sort_values(["norm", "backend", "query_id", "rank"], kind="stable")
    out = {}
    for norm, g in h.groupby("norm", sort=False):
        w, ht = pd.to_numeric(g["width"], errors="coerce"), pd.to_numeric(g["height"], errors="coerce")
        lic = g["licence"].dropna()
        out[ms.url_uid(norm)] = {
            "url": g["image_url"].iloc[0], "urls": _uniq(g["image_url"]), "query_ids": _uniq(g["query_id"]),
            "alt_texts": _uniq(g["alt_text"]), "page_urls": _uniq(g["page_url"]),
            "qids": list(dict.fromkeys(x for v in g["qids"] for x in v)), "kinds": _uniq(g["kind"]),
            "backends": _uniq(g["backend"]), "is_living": bool(g["is_living"].any()),
            "licence": lic.iloc[0] if len(lic) else None,
            "width": None if w.isna().all() else int(w.max()), "height": None if ht.isna().all() else int(ht.max()),
        }
    return out


def _row_dict(r) -> dict:
    d = {k: r[k] for k in ms.OUT_COLUMNS if k != "uid"}
    for k in ("urls", "query_ids", "alt_texts", "page_urls", "qids", "kinds", "backends"):
        d[k] = list(d[k])
    for k in ("width", "height", "licence"):
        d[k] = None if pd.isna(d[k]) else d[k]
    d["is_living"] = bool(d["is_living"])
    return d


# --- synthetic hits with every awkward case the merge has to fold together ------------------------------------
def url_variants(i: int) -> list[str]:
    """Raw spellings of one image that must normalise to the same URL."""
    host, path = f"img{i % 7}.example.org", f"/p/{i}/photo.jpg"
    base = f"https://{host}{path}"
    return [base, f"HTTPS://IMG{i % 7}.Example.ORG{path}", f"{base}#frag{i}", f"https://{host}:443{path}",
            f"{base}?utm_source=feed", f"  {base} "]


def make_hits(n_images=150, n_hits=1500, seed=0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = random.Random(seed)
    kinds = ["wd-noun-world", "wd-noun-living", "wd-attr-living", "wd-attrnoun-world"]
    qids = [f"{hashlib.sha256(str(k).encode()).hexdigest()[:16]}" for k in range(40)]
    queries = pd.DataFrame({
        "query_id": qids, "kind": [kinds[k % 4] for k in range(40)], "is_living": [k % 4 in (1, 2) for k in range(40)],
        "qids": [[] if k % 4 == 2 else [f"Q{k}", f"Q{k % 5 + 100}"] for k in range(40)]})
    rows = []
    for j in range(n_hits):
        i = rng.randrange(n_images)
        rows.append({
            "query_id": rng.choice(qids), "backend": rng.choice(["serpapi_google", "serpapi_bing", "pool"]),
            "rank": rng.randrange(60), "image_url": rng.choice(url_variants(i)),
            "page_url": rng.choice([None, "", f"https://page{i}.net/{rng.randrange(3)}"]),
            "alt_text": rng.choice([None, "", f"alt {i} {rng.randrange(4)}", f"Alt {i}"]),
            "width": rng.choice([None, 100 + rng.randrange(900)]), "height": rng.choice([None, 50 + rng.randrange(900)]),
            "licence": rng.choice([None, None, "cc0", "by-sa"]),
        })
    hits = pd.DataFrame(rows)
    for c in ("width", "height"):
        hits[c] = hits[c].astype("Int64")
    return hits, queries


# --- tests -------------------------------------------------------------------------------------------------------
ODD_URLS = [
    "http://a.org", "http://a.org/", "HTTP://A.ORG/X?Y=Z#F", "https://a.org:443/x", "https://a.org:0443/x",
    "http://a.org:8080/x", "https://a.org:99999/x", "http://a.org:/x", "http://user@A.org/x", "http://u:pw@a.org/x",
    "http://a.org/x?a=b c", "http://a.org/x?a=%7E&b=%2F", "http://a.org/x?flag", "http://a.org/x?a=1&&b=2",
    "http://a.org/x?a=1;b=2", "http://a.org/x?utm_source=1", "http://a.org/x?a=1&utm_medium=m&utm_x=2",
    "http://a.org/x?", "http://a.org/x#", "http://a.org/ü/é.jpg", "http://ÄÖ.org/x", " http://a.org/x\t",
    "http://a.org/x y", "http://a.org/x\u3000", "ftp://a.org/x", "data:image/png;base64,AAAA", "//a.org/x",
    "a.org/x", "http://[::1]/x", "http://[::1", "http://a.org/x?a=+", "http://a.org/%7Ex", "http://a.org/x?A=1&a=2",
    "http://a.org/x?a=1#b?c=2", "https://A.org.:443/x.jpg", "http:///x", "http://a.org?x=1", "http://a.org#f",
    "http://a.org/x?a=b=c", "http://a.org/x?=v", "http://a.org/\\x", "http://a.org/x?utm_source",
]


def test_vectorised_normalisation_equals_python_reference():
    rng = random.Random(1)
    urls = list(ODD_URLS)
    # random recombinations of URL parts, the common shape included
    for _ in range(500):
        urls.append(rng.choice(["http", "https", "HTTPS", "Http"]) + "://" + rng.choice(["a.org", "B.Org", "c-d.x.io"])
                    + rng.choice(["", ":80", ":443", ":8080"]) + rng.choice(["", "/", "/a/b.jpg", "/A B", "/%20"])
                    + rng.choice(["", "?", "?w=1", "?w=1&h=2", "?utm_term=x&w=1", "?q=a+b", "?k"])
                    + rng.choice(["", "#x", "#"]))
    got, bad = ms.normalise_urls(pa.array(urls + [None], pa.string()))
    got = got.to_pylist()
    n_bad = 0
    for u, g in zip(urls, got[:-1]):
        try:
            want = ms.normalise_url(u)
        except ValueError:
            want = None
            n_bad += 1
        assert g == want, u
    assert got[-1] is None and bad == n_bad and n_bad >= 2  # the out-of-range port and the broken IPv6 host


def test_uid_hex_and_shuffle_key():
    norms = ["http://a.org/x", "https://b.org/", "http://ü.org/é"]
    u = ms.uid64(pa.array(norms))
    assert ms.uid_hex(u).to_pylist() == [ms.url_uid(n) for n in norms]
    k0, k1 = ms.shuffle_key(u, 0), ms.shuffle_key(u, 1)
    assert len(set(k0.tolist())) == 3 and not np.array_equal(k0, k1)
    many = np.arange(100_000, dtype=np.uint64)  # bijective on a large set: no collisions
    assert len(np.unique(ms.shuffle_key(many, 7))) == len(many)


def test_merge_equals_reference_on_awkward_hits():
    hits, queries = make_hits()
    want = reference_merge(hits, queries)
    got = ms.merge_hits(hits, queries, seed=3)
    assert list(got.columns) == ms.OUT_COLUMNS and got["uid"].is_unique
    assert len(got) == len(want) == hits["image_url"].str.extract(r"/p/(\d+)/")[0].nunique()
    for r in got.to_dict("records"):
        assert _row_dict(r) == want[r["uid"]], r["uid"]
    assert str(got["width"].dtype) == "Int64" and got["is_living"].dtype == bool


def test_partitioned_files_equal_in_memory_and_seeded_shuffle(tmp_path):
    hits, queries = make_hits(n_images=400, n_hits=3000, seed=5)
    qpath = tmp_path / "queries.parquet"
    queries.to_parquet(qpath)
    paths = []
    for i, lo in enumerate(range(0, len(hits), 450)):
        part = hits.iloc[lo:lo + 450]
        p = tmp_path / f"chunk_{i:05d}.parquet"
        if i == 3:  # an empty chunk as search writes it (all-null object columns)
            part = pd.DataFrame(columns=hits.columns)
        elif i == 4:  # widths as floats with NaN, ranks as int32: other producers, other dtypes
            part = part.astype({"width": float, "rank": "int32"})
        part.to_parquet(p)
        paths.append(str(p))
    kept = pd.concat([f for f in map(pd.read_parquet, paths) if len(f)], ignore_index=True)
    out = tmp_path / "out" / "urls.parquet"
    stats = ms.merge_files(paths, str(qpath), str(out), seed=11, partition_rows=40, flush_rows=300)
    assert pq.read_schema(out).equals(ms.OUT_SCHEMA)
    many = pd.read_parquet(out)
    assert stats == {"hits": len(kept), "urls": len(many)}
    assert [p.name for p in out.parent.iterdir()] == ["urls.parquet"]  # partitions and temp file cleaned up
    one = ms.merge_hits(kept, queries, seed=11)
    # 128 partitions or one: the same rows in the same (seeded) order
    assert many["uid"].tolist() == one["uid"].tolist()
    want = reference_merge(kept, queries)
    for r in many.to_dict("records"):
        assert _row_dict(r) == want[r["uid"]]
    other = ms.merge_hits(kept, queries, seed=12)
    assert sorted(other["uid"]) == sorted(one["uid"]) and other["uid"].tolist() != one["uid"].tolist()
    # shuffled: neither in uid order nor in order of first appearance in the hits
    first_seen = list(dict.fromkeys(ms.url_uid(ms.normalise_url(u)) for u in kept["image_url"]))
    assert one["uid"].tolist() != sorted(one["uid"]) and one["uid"].tolist() != first_seen


def test_unknown_queries_bad_urls_and_empty_input(tmp_path, caplog):
    queries = pd.DataFrame({"query_id": ["a"], "kind": ["wd-noun-living"], "is_living": [True], "qids": [["Q1"]]})
    hits = pd.DataFrame({"query_id": ["a", "zz", "a", "a", "a"], "backend": ["pool"] * 5, "rank": [0, 1, 2, 3, 4],
                         "image_url": ["http://x.org/1", "http://x.org/1", "https://x.org:99999/2", "", None]})
    got = ms.merge_hits(hits, queries, seed=0)  # width/height/licence/page_url/alt_text absent: null
    assert len(got) == 1
    r = got.iloc[0]
    assert list(r["query_ids"]) == ["a", "zz"] and list(r["kinds"]) == ["wd-noun-living"] and list(r["qids"]) == ["Q1"]
    assert r["is_living"] and pd.isna(r["width"]) and r["licence"] is None and list(r["alt_texts"]) == []
    assert "not in queries.parquet" in caplog.text
    qpath, empty = tmp_path / "q.parquet", tmp_path / "chunk.parquet"
    queries.to_parquet(qpath)
    pd.DataFrame(columns=list(hits.columns)).to_parquet(empty)
    with pytest.raises(RuntimeError, match="no image URL at all"):
        ms.merge_files([str(empty)], str(qpath), str(tmp_path / "urls.parquet"), seed=0)
    assert not (tmp_path / "urls.parquet").exists()
    with pytest.raises(ValueError, match="duplicate query_id"):
        ms.merge_hits(hits, pd.concat([queries, queries]), seed=0)
    with pytest.raises(ValueError, match="required column 'image_url'"):
        ms.merge_hits(hits.drop(columns="image_url"), queries, seed=0)
