"""Rebuild from the authors' released metadata (scripts/import_released.py, rule import_released_metadata).

The fixture is written here in the release's schema (docs/PAPER_NOTES.md §16): two image-metadata files of 20 rows in
all, with list columns, duplicate images (the same first link, spelled differently), misaligned list lengths, an image
without links and a query hash missing from the query table.
"""
import base64
import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import build_queries as bq
import import_released as ir
import merge_search as ms
from workflow_helpers import job_counts, make_workdir, snakemake

META_GLOB = "data/entitynet_hf/images_metadata/train-*.parquet"
QUERIES = "data/entitynet_hf/entitynet-queries.parquet"


def qhash(s: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(s.encode()).digest()).decode()[:38]


H = {name: qhash(name) for name in ("rabbit_g", "rabbit_b", "hammer", "aardvark", "running", "run_rabbit",
                                    "cartoon", "broken", "unlisted")}


def author_queries() -> pd.DataFrame:
    rows = [
        (H["rabbit_g"], "European Rabbit", "wd-noun-living", "http://www.wikidata.org/entity/Q25851", None, "google"),
        (H["rabbit_b"], "european rabbit", "wd-noun-living", "Q25851", None, "bing"),  # same query, other api
        (H["hammer"], "hammer", "wd-noun-world", "Q25294", None, "google"),
        (H["aardvark"], "aardvark", "wordnet-noun-living", "aardvark.n.01", None, "google"),
        (H["running"], "running animal", "wd-attr-living", None, "running", "bing"),
        (H["run_rabbit"], "running rabbit", "wd-attrnoun-living", "Q25851", "Running", "google"),
        (H["cartoon"], "donald duck", "wd-noun-world-cartoon", "Q6550", None, "google"),
        (H["broken"], None, "wd-noun-world", "Q1", None, "google"),  # no query text: dropped
    ]
    return pd.DataFrame(rows, columns=list(ir.QUERY_COLUMNS))


def metadata_rows() -> list[dict]:
    """20 released image rows; rows 0/7/13 are one image (first links that normalise alike)."""
    rows = []
    for i in range(20):
        rows.append({"key": f"train{i:09d}", "qh": [H["hammer"]], "texts": [f"a hammer {i}"],
                     "images_link": [f"https://img.example.org/{i}.jpg"],
                     "images_contextlink": [f"https://shop.example.org/p/{i}"],
                     "images_width": [640.0 + i], "images_height": [480.0]})
    rows[0].update(qh=[H["rabbit_g"], H["run_rabbit"]], texts=["Rabbit", "rabbit on grass"],
                   images_link=["https://img.example.org/rabbit.jpg", "http://mirror.example.net/r.jpg"],
                   images_contextlink=["https://a.example.org/1", "https://b.example.org/2"],
                   images_width=[800.0, 1024.0], images_height=[600.0, 768.0])
    rows[7].update(qh=[H["rabbit_b"], H["running"]], texts=["Rabbit", "", "hare?"],
                   images_link=["HTTPS://IMG.example.org/rabbit.jpg#top"], images_contextlink=["https://c.example.org/3"],
                   images_width=[1200.0], images_height=[None])
    rows[13].update(qh=[H["unlisted"]], texts=[], images_link=["https://img.example.org/rabbit.jpg?utm_source=x"],
                    images_contextlink=[], images_width=[], images_height=[])
    rows[3].update(qh=[H["aardvark"], H["cartoon"]], images_link=["", "https://img.example.org/aardvark.jpg"],
                   images_contextlink=["https://z.example.org/0"])  # first link empty: the second one keys it
    rows[5].update(images_link=[], images_contextlink=[], images_width=[], images_height=[])  # nothing to download
    rows[9].update(images_link=["https://img.example.org/9.jpg", "https://img.example.org/9b.jpg"],
                   images_contextlink=["https://shop.example.org/p/9"], images_width=[10.0, 20.0, 30.0])
    return rows


def write_release(root: Path) -> list[dict]:
    rows = metadata_rows()
    (root / "data/entitynet_hf/images_metadata").mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("key", pa.string()), ("qh", pa.list_(pa.string())), ("texts", pa.list_(pa.string())),
                        ("images_link", pa.list_(pa.string())), ("images_contextlink", pa.list_(pa.string())),
                        ("images_width", pa.list_(pa.float64())), ("images_height", pa.list_(pa.float64()))])
    for f, part in enumerate((rows[:12], rows[12:])):
        pq.write_table(pa.Table.from_pylist(part, schema=schema),
                       root / f"data/entitynet_hf/images_metadata/train-{f:05d}-of-00002.parquet")
    author_queries().to_parquet(root / QUERIES)
    return rows


def test_released_queries_mapping(caplog):
    q, hmap = ir.released_queries(author_queries())
    assert "lack query_hash, query or query_type" in caplog.text
    assert H["broken"] not in hmap.index and len(q) == 6 and q["query_id"].is_unique
    rabbit = q[q["kind"] == "wd-noun-living"].iloc[0]
    assert rabbit["query_id"] == bq.query_id("wd-noun-living", "european rabbit")  # joins with our own queries
    assert sorted(rabbit["author_query_hashes"]) == sorted([H["rabbit_g"], H["rabbit_b"]])
    assert sorted(rabbit["apis"]) == ["bing", "google"] and list(rabbit["qids"]) == ["Q25851"] and rabbit["is_living"]
    by_kind = q.set_index("kind")
    assert list(by_kind.loc["wordnet-noun-living", "qids"]) == ["wn:aardvark.n.01"]
    assert list(by_kind.loc["wd-attr-living", "qids"]) == [] and by_kind.loc["wd-attr-living", "is_living"]
    assert by_kind.loc["wd-attrnoun-living", "attribute"] == "running"
    assert not by_kind.loc["wd-noun-world-cartoon", "is_living"] and not by_kind.loc["wd-noun-world", "is_living"]
    assert hmap.loc[H["rabbit_b"], "backend"] == "released_bing"
    assert hmap.loc[H["rabbit_b"], "query_id"] == hmap.loc[H["rabbit_g"], "query_id"]
    with pytest.raises(ValueError, match=r"q\.parquet: missing column\(s\) \['api'\]"):
        ir.released_queries(author_queries().drop(columns="api"), source="q.parquet")


def test_import_maps_release_into_urls_contract(tmp_path, caplog):
    rows = write_release(tmp_path)
    paths = sorted(str(p) for p in (tmp_path / "data/entitynet_hf/images_metadata").glob("*.parquet"))
    urls_out, q_out = tmp_path / "results/urls.parquet", tmp_path / "results/queries.parquet"
    summary = ir.import_released(paths, str(tmp_path / QUERIES), str(urls_out), str(q_out), seed=0)
    schema = pq.read_schema(urls_out)
    assert schema.names[:len(ms.OUT_COLUMNS)] == ms.OUT_COLUMNS
    assert schema.names[len(ms.OUT_COLUMNS):] == ["author_query_hashes", "author_keys"]
    u = pd.read_parquet(urls_out)
    queries = pd.read_parquet(q_out)
    # 20 rows - 1 without links - 2 merged into row 0 = 17 images
    assert summary["images"] == 20 and summary["no_link"] == 1 and summary["unknown_hashes"] == 1
    assert len(u) == summary["urls"] == 17 and u["uid"].is_unique
    assert "not in" in caplog.text and "have no link" in caplog.text

    by_key = {k: r for r in u.to_dict("records") for k in r["author_keys"]}
    rabbit = by_key["train000000000"]
    assert sorted(rabbit["author_keys"]) == ["train000000000", "train000000007", "train000000013"]
    assert rabbit["url"] == "https://img.example.org/rabbit.jpg"
    assert rabbit["uid"] == ms.url_uid(ms.normalise_url("https://img.example.org/rabbit.jpg"))
    assert sorted(rabbit["urls"]) == sorted(["https://img.example.org/rabbit.jpg", "http://mirror.example.net/r.jpg",
                                             "HTTPS://IMG.example.org/rabbit.jpg#top",
                                             "https://img.example.org/rabbit.jpg?utm_source=x"])
    assert sorted(rabbit["alt_texts"]) == ["Rabbit", "hare?", "rabbit on grass"]  # distinct, no empty text
    assert sorted(rabbit["page_urls"]) == ["https://a.example.org/1", "https://b.example.org/2",
                                           "https://c.example.org/3"]
    assert sorted(rabbit["author_query_hashes"]) == sorted(H[k] for k in ("rabbit_g", "run_rabbit", "rabbit_b",
                                                                            "running", "unlisted"))
    qid = dict(zip(queries["text"] + "|" + queries["kind"], queries["query_id"]))
    assert sorted(rabbit["query_ids"]) == sorted([qid["european rabbit|wd-noun-living"],
                                                  qid["running rabbit|wd-attrnoun-living"],
                                                  qid["running animal|wd-attr-living"]])
    assert sorted(rabbit["kinds"]) == ["wd-attr-living", "wd-attrnoun-living", "wd-noun-living"]
    assert list(rabbit["qids"]) == ["Q25851"] and rabbit["is_living"]
    assert sorted(rabbit["backends"]) == ["released_bing", "released_google"]
    assert (rabbit["width"], rabbit["height"]) == (1200, 768) and rabbit["licence"] is None

    aard = by_key["train000000003"]  # empty first link: keyed by the second
    assert aard["url"] == "https://img.example.org/aardvark.jpg" and list(aard["urls"]) == [aard["url"]]
    assert sorted(aard["qids"]) == ["Q6550", "wn:aardvark.n.01"]
    assert aard["is_living"]  # wordnet-noun-living
    nine = by_key["train000000009"]  # misaligned lists: every value kept, sizes are maxima
    assert sorted(nine["urls"]) == ["https://img.example.org/9.jpg", "https://img.example.org/9b.jpg"]
    assert nine["width"] == 30 and nine["height"] == 480 and not nine["is_living"]
    assert "train000000005" not in by_key
    plain = by_key["train000000019"]
    assert list(plain["query_ids"]) == [qid["hammer|wd-noun-world"]] and list(plain["qids"]) == ["Q25294"]
    assert list(plain["alt_texts"]) == ["a hammer 19"] and list(plain["backends"]) == ["released_google"]
    assert set(u["uid"]) == {ms.url_uid(ms.normalise_url(next(x for x in r["images_link"] if x)))
                             for r in rows if any(r["images_link"])}
    # queries.parquet keeps the contract's columns for build_shards and text_candidates
    assert {"query_id", "text", "kind", "qids", "is_living", "count"} <= set(queries.columns)
    # seeded shuffle: another seed, same rows, another order
    other = tmp_path / "other.parquet"
    ir.import_released(paths, str(tmp_path / QUERIES), str(other), str(tmp_path / "q2.parquet"), seed=1)
    o = pd.read_parquet(other)
    assert sorted(o["uid"]) == sorted(u["uid"]) and o["uid"].tolist() != u["uid"].tolist()


def test_metadata_schema_mismatch_names_file(tmp_path):
    write_release(tmp_path)
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"key": ["k"], "qh": [["x"]], "links": [["http://a.org/x"]]}).to_parquet(bad)
    with pytest.raises(ValueError, match=r"bad\.parquet: missing column\(s\) \['texts', 'images_link'"):
        ir.import_released([str(bad)], str(tmp_path / QUERIES), str(tmp_path / "u.parquet"),
                           str(tmp_path / "q.parquet"), seed=0)
    # scalar columns (a single link per row) are read as one-element lists
    scalar = tmp_path / "scalar.parquet"
    pd.DataFrame({"key": ["k1", "k2"], "qh": [H["hammer"], None], "texts": ["t", None],
                  "images_link": ["http://a.org/1", "http://a.org/2"], "images_contextlink": [None, "http://p"],
                  "images_width": [5, 6], "images_height": [7, 8]}).to_parquet(scalar)
    ir.import_released([str(scalar)], str(tmp_path / QUERIES), str(tmp_path / "u.parquet"),
                       str(tmp_path / "q.parquet"), seed=0)
    u = pd.read_parquet(tmp_path / "u.parquet").set_index("url")
    assert list(u.loc["http://a.org/1", "alt_texts"]) == ["t"] and u.loc["http://a.org/2", "width"] == 6
    assert list(u.loc["http://a.org/2", "page_urls"]) == ["http://p"] and list(u.loc["http://a.org/2", "query_ids"]) == []


def test_dag_plans_import_and_no_search(tmp_path):
    wd = make_workdir(tmp_path / "wd")
    missing = snakemake(wd, "-n", "results/entitynet_released/urls.parquet", timeout=120)
    assert missing.returncode != 0 and "train-*.parquet" in missing.stdout + missing.stderr  # names the pattern
    write_release(wd)
    r = snakemake(wd, "-n", "results/entitynet_released/urls.parquet", "results/entitynet_released/queries.parquet",
                  timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert job_counts(r.stdout) == {"import_released_metadata": 1}
    assert "results/entitynet_released/search/" not in r.stdout
    # the searched datasets still merge their search hits
    d = snakemake(wd, "-n", "results/demo/urls.parquet", timeout=120)
    assert d.returncode == 0 and job_counts(d.stdout).get("merge_search") == 1
    assert "import_released_metadata" not in d.stdout
    # and the rule really runs its script
    run = snakemake(wd, "--cores", "1", "results/entitynet_released/urls.parquet", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(pd.read_parquet(wd / "results/entitynet_released/urls.parquet")) == 17
    assert len(pd.read_parquet(wd / "results/entitynet_released/queries.parquet")) == 6
    shutil.rmtree(wd / ".snakemake", ignore_errors=True)
