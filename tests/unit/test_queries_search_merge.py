"""Queries, the pool search backend, and the per-image merge."""
import pandas as pd
import pytest

from lib.search import query_builder as bq
import search as rs
from lib.search import merge as ms
from lib.search.queries import KINDS, query_id
from lib.search.search_pool import PoolBackend, build_index, fts_expression


def entities():
    return pd.DataFrame([
        {"qid": "Q25851", "label": "European rabbit", "aliases": ["Oryctolagus cuniculus", "coney"],
         "common_names": [], "taxon_names": ["Oryctolagus cuniculus"], "is_living": True,
         "natural_type_label": "animal", "natural_type_qid": "Q729", "source": "wikidata"},
        {"qid": "Q25294", "label": "Hammer", "aliases": ["mallet"], "common_names": [], "taxon_names": [],
         "is_living": False, "natural_type_label": "physical tool", "natural_type_qid": "Q39546",
         "source": "wikidata"},
        {"qid": "Q1", "label": "hammer", "aliases": [], "common_names": [], "taxon_names": [],
         "is_living": False, "natural_type_label": "tool", "natural_type_qid": "Q2", "source": "wikidata"},
    ])


def attributes():
    return pd.DataFrame([
        {"qid": "Q25851", "category": "Behavior", "attribute": "running", "query": "running rabbit", "source": "kg"},
        {"qid": "Q25851", "category": "Color", "attribute": "white", "query": "white european rabbit", "source": "kg"},
        {"qid": "Q25294", "category": "Color", "attribute": "red", "query": "red hammer", "source": "kg"},
    ])


def test_query_kinds_ids_and_syntax():
    q = bq.build_queries(entities(), attributes(), KINDS)
    assert set(q["kind"]) == {"wd-noun-living", "wd-noun-world", "wd-attrnoun-living", "wd-attrnoun-world",
                              "wd-attr-living", "wd-attr-world"}
    noun = q[(q["kind"] == "wd-noun-world") & (q["text"] == "hammer")].iloc[0]
    assert sorted(noun["qids"]) == ["Q1", "Q25294"]  # same text from two entities: one query, both QIDs
    rabbit = q[q["text"] == "european rabbit"].iloc[0]
    assert rabbit["or_terms"].split() == ["oryctolagus", "cuniculus", "coney", "animal"]
    assert rabbit["exclude_terms"] == "drawing clipart illustration cartoon vector painting"
    attr = q[q["kind"] == "wd-attr-living"]
    assert set(attr["text"]) == {"running animal", "white animal"} and all(len(v) == 0 for v in attr["qids"])
    assert q["query_id"].is_unique and q["query_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert query_id("wd-noun-world", "  Hammer ") == query_id("wd-noun-world", "hammer")
    assert query_id("wd-noun-world", "hammer") != query_id("wd-noun-living", "hammer")


def test_world_queries_have_the_authors_shape_by_default():
    """The authors write world queries as {entity, query, type: Photo}: no OR alternatives, no exclude list. The
    ``extended`` switch keeps our living-query syntax for them; living queries are the same either way."""
    q = bq.build_queries(entities(), attributes(), KINDS).set_index(["kind", "text"])
    ext = bq.build_queries(entities(), attributes(), KINDS,
                           world_search_terms="extended").set_index(["kind", "text"])
    world = [k for k in q.index if k[0].endswith("-world")]
    assert {k[0] for k in world} == {"wd-noun-world", "wd-attrnoun-world", "wd-attr-world"}
    for key in world:
        assert (q.at[key, "or_terms"], q.at[key, "exclude_terms"], q.at[key, "image_type"]) == ("", "", "photo")
    assert ext.at[("wd-noun-world", "hammer"), "or_terms"].split() == ["mallet", "physical", "tool"]
    assert ext.at[("wd-attrnoun-world", "red hammer"), "exclude_terms"] == bq.EXCLUDE_TERMS
    living = [k for k in q.index if not k[0].endswith("-world")]
    assert len(living) == 5
    cols = ["query_id", "qids", "or_terms", "exclude_terms", "image_type", "natural_type"]
    assert q.loc[living, cols].equals(ext.loc[living, cols])
    assert (q.loc[world, "query_id"] == ext.loc[world, "query_id"]).all()  # same query, only its search terms differ
    with pytest.raises(ValueError, match="world_search_terms"):
        bq.build_queries(entities(), attributes(), KINDS, world_search_terms="google")


def test_query_caps_are_seeded():
    a = bq.build_queries(entities(), attributes(), KINDS, {"wd-noun-world": 1}, seed=3)
    b = bq.build_queries(entities(), attributes(), KINDS, {"wd-noun-world": 1}, seed=3)
    assert (a["kind"] == "wd-noun-world").sum() == 1 and a.equals(b)


@pytest.fixture()
def pool_index(tmp_path):
    pool = tmp_path / "pool.csv"
    pd.DataFrame({
        "url": ["http://x/1.jpg", "http://x/2.jpg", "http://x/3.jpg", "http://x/4.jpg"],
        "alt_text": ["A red hammer on a bench", "hammer", "Claw-hammer 'quoted' {braces} SELECT", "a rabbit"],
        "licence": ["CC0", "", "PD", "CC0"],
    }).to_csv(pool, index=False)
    idx = tmp_path / "pool.sqlite"
    assert build_index(pool, idx) == 4
    return idx


def test_pool_fts_and_substring(pool_index):
    b = PoolBackend(pool_index)
    hits = b.search({"query_id": "q1", "text": "hammer"}, 10)
    assert {h["image_url"] for h in hits} == {"http://x/1.jpg", "http://x/2.jpg", "http://x/3.jpg"}
    assert [h["rank"] for h in hits] == [0, 1, 2]
    assert len(b.search({"query_id": "q1", "text": "hammer"}, 2)) == 2  # balancing cap
    assert [h["image_url"] for h in b.search({"query_id": "q", "text": "red hammer"}, 10)] == ["http://x/1.jpg"]
    assert b.search({"query_id": "q", "text": 'x" OR 1 --'}, 10) == []  # FTS syntax is data, not code
    s = PoolBackend(pool_index, match="substring")
    assert {h["image_url"] for h in s.search({"query_id": "q", "text": "claw-hammer"}, 10)} == {"http://x/3.jpg"}
    with pytest.raises(ValueError, match="match"):
        PoolBackend(pool_index, match="regex")
    assert fts_expression("!!") is None


def test_run_chunk_partitions_queries(pool_index):
    q = pd.DataFrame({"query_id": [f"{i:016x}" for i in range(20)], "text": ["hammer"] * 20})
    b = PoolBackend(pool_index)
    parts = [rs.run_chunk(q, b, 1, c, 3) for c in range(3)]
    assert sum(len(p) for p in parts) == 20  # every query searched exactly once across chunks
    assert list(parts[0].columns) == list(rs.HIT_COLUMNS)
    with pytest.raises(ValueError, match="unknown search backend"):
        rs.make_backend("bing_v7", {}, None, "/tmp")


def test_normalise_url():
    assert ms.normalise_url("HTTP://Example.COM:80/a.jpg#frag") == "http://example.com/a.jpg"
    assert ms.normalise_url("https://x.org/a.jpg?utm_source=z&w=2") == "https://x.org/a.jpg?w=2"
    assert ms.normalise_url("https://x.org:8443/a") == "https://x.org:8443/a"


def test_merge_unions_queries_alt_texts_and_living():
    queries = pd.DataFrame({"query_id": ["a", "b", "c"], "kind": ["wd-noun-world", "wd-noun-living", "wd-attr-living"],
                            "is_living": [False, True, True], "qids": [["Q1"], ["Q2"], []]})
    hits = pd.DataFrame({
        "query_id": ["a", "b", "c", "a"], "backend": ["pool", "pool", "serpapi_bing", "pool"], "rank": [0, 3, 1, 1],
        "image_url": ["http://X.org/i.jpg", "http://x.org/i.jpg#z", "http://x.org/i.jpg", "http://x.org/j.jpg"],
        "page_url": ["p1", "p2", None, "p3"], "alt_text": ["first", "second", "first", ""],
        "width": [10, 20, None, 5], "height": [10, 20, None, 5], "licence": [None, "CC0", None, None]})
    m = ms.merge_hits(hits, queries, seed=0).set_index("url")
    assert len(m) == 2
    row = m.loc[m.index.str.lower() == "http://x.org/i.jpg"].iloc[0]
    assert sorted(row["query_ids"]) == ["a", "b", "c"] and sorted(row["alt_texts"]) == ["first", "second"]
    assert sorted(row["qids"]) == ["Q1", "Q2"] and row["is_living"] and sorted(row["backends"]) == ["pool", "serpapi_bing"]
    assert not m.loc["http://x.org/j.jpg", "is_living"] and list(m.loc["http://x.org/j.jpg", "alt_texts"]) == []
    again = ms.merge_hits(hits.sample(frac=1, random_state=1), queries, seed=0)
    assert sorted(again["uid"]) == sorted(m["uid"])  # uid independent of hit order


def test_baseline_tag_parsing():
    from lib.eval import baselines

    assert baselines.parse_baseline_tag("ViT-B-32__openai") == ("ViT-B-32", "openai")
    assert baselines.parse_baseline_tag("ViT-B-16__hf-hub:imageomics/bioclip")[1] == "hf-hub:imageomics/bioclip"
    with pytest.raises(ValueError, match="expected <open_clip model>__<pretrained tag>"):
        baselines.parse_baseline_tag("ViT-B-32")
    assert baselines.baseline_samples_seen("datacomp_m_s128m_b4k", None) == 128_000_000
    assert baselines.baseline_samples_seen("openai", None) == 12_800_000_000


def test_wordnet_lemmas_are_separate_queries():
    ents = pd.DataFrame([{"qid": "wordnet:aardvark.n.01", "label": "aardvark", "aliases": ["ant bear", "Orycteropus afer"],
                          "common_names": [], "taxon_names": [], "is_living": True, "natural_type_label": "animal",
                          "natural_type_qid": "wordnet:animal.n.01", "source": "wordnet"}])
    q = bq.build_queries(ents, pd.DataFrame(columns=["qid", "category", "attribute", "query", "source"]), KINDS)
    assert sorted(q["text"]) == ["aardvark", "ant bear", "orycteropus afer"]
    assert set(q["kind"]) == {"wordnet-noun-living"} and all(list(v) == ["wordnet:aardvark.n.01"] for v in q["qids"])
    assert q.set_index("text").at["ant bear", "or_terms"].split()[:1] == ["aardvark"]
