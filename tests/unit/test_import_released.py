"""Rebuild from the authors' released metadata (lib.search.released and lib.search.released_entities, rules
import_released_metadata and import_released_entities of scripts/import_released.py).

The fixture (tests/fixtures/released/, README.md there) is the release in miniature, in its schema: the query table,
the entity table (textvalues/textsources per entity, naturalentity) and two image-metadata files of 20 rows in all,
with list columns, duplicate images (the same first link, spelled differently), misaligned list lengths, an image
without links and a query hash missing from the query table.
"""
import importlib.util
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from lib.search import released as ir
from lib.search import released_entities as ire
from lib.train import text_mix as tm
from lib.search import merge as ms
from lib.search.queries import query_id
from workflow_helpers import job_counts, make_workdir, snakemake

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "released"
RELEASE = "data/entitynet_hf"  # where config.yaml's entitynet_released reads the release
META_GLOB = f"{RELEASE}/images_metadata/train-*.parquet"
QUERIES = f"{RELEASE}/entitynet-queries.parquet"
ENTITIES = f"{RELEASE}/entitynet-entities.parquet"

# the fixture's builder: the hash of each named query, and the check that the parquet files are its output
_spec = importlib.util.spec_from_file_location("released_fixture", FIXTURE / "make_fixture.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)
H = fx.H


def author_queries() -> pd.DataFrame:
    return pd.read_parquet(FIXTURE / "entitynet-queries.parquet")


def author_entities() -> pd.DataFrame:
    return pd.read_parquet(FIXTURE / "entitynet-entities.parquet")


def write_release(root: Path) -> list[dict]:
    """Copy the fixture release to ``root/data/entitynet_hf``; returns the image rows."""
    dst = root / RELEASE
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(FIXTURE, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.py", "*.md", "__pycache__"))
    return pd.concat([pd.read_parquet(p) for p in sorted((dst / "images_metadata").glob("*.parquet"))],
                     ignore_index=True).to_dict("records")


def test_fixture_is_current():
    """The committed parquet files are what make_fixture.py writes (the builder is the fixture's source)."""
    with tempfile.TemporaryDirectory() as d:
        fx.write(Path(d))
        for rel in ("entitynet-queries.parquet", "entitynet-entities.parquet",
                    "images_metadata/train-00000-of-00002.parquet", "images_metadata/train-00001-of-00002.parquet"):
            assert pq.read_table(Path(d) / rel).equals(pq.read_table(FIXTURE / rel)), rel


def test_released_queries_mapping(caplog):
    q, hmap = ir.released_queries(author_queries())
    assert "lack query_hash, query or query_type" in caplog.text
    assert H["broken"] not in hmap.index and len(q) == 6 and q["query_id"].is_unique
    rabbit = q[q["kind"] == "wd-noun-living"].iloc[0]
    assert rabbit["query_id"] == query_id("wd-noun-living", "european rabbit")  # joins with our own queries
    assert sorted(rabbit["author_query_hashes"]) == sorted([H["rabbit_g"], H["rabbit_b"]])
    assert sorted(rabbit["apis"]) == ["bing", "google"] and list(rabbit["qids"]) == ["Q25851"] and rabbit["is_living"]
    by_kind = q.set_index("kind")
    assert list(by_kind.loc["wordnet-noun-living", "qids"]) == ["wordnet:aardvark.n.01"]  # the authors' key
    # wd-attr rows keep their entity (the authors' text mix reads its texts)
    assert list(by_kind.loc["wd-attr-living", "qids"]) == ["Q729"] and by_kind.loc["wd-attr-living", "is_living"]
    assert by_kind.loc["wd-attrnoun-living", "attribute"] == "running"
    assert not by_kind.loc["wd-noun-world-cartoon", "is_living"] and not by_kind.loc["wd-noun-world", "is_living"]
    assert hmap.loc[H["rabbit_b"], "backend"] == "released_bing"
    assert hmap.loc[H["rabbit_b"], "query_id"] == hmap.loc[H["rabbit_g"], "query_id"]
    with pytest.raises(ValueError, match=r"q\.parquet: missing column\(s\) \['api'\]"):
        ir.released_queries(author_queries().drop(columns="api"), source="q.parquet")


def test_entity_key_is_the_authors_key():
    assert ir.entity_key("Q25851") == "Q25851"
    assert ir.entity_key(" http://www.wikidata.org/entity/Q25851 ") == "Q25851"  # an IRI joins its Q id
    assert ir.entity_key("wordnet:aardvark.n.01") == "wordnet:aardvark.n.01"  # verbatim, no wn: prefix
    assert ir.entity_key("wordnet:Q1.n.01") == "wordnet:Q1.n.01"
    assert [ir.entity_key(v) for v in (None, float("nan"), "", "  ")] == [None] * 4
    # every kind keeps its entity, wd-attr included
    assert ir.entity_ref("wd-attr-world", "Q39546") == "Q39546"
    assert ir.entity_ref("wordnet-noun-living", "wordnet:aardvark.n.01") == "wordnet:aardvark.n.01"


def _import_entities(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    write_release(tmp_path)
    e_out, a_out = tmp_path / "results/entities.parquet", tmp_path / "results/attributes.parquet"
    summary = ire.import_released_entities(str(tmp_path / ENTITIES), str(tmp_path / QUERIES), str(e_out), str(a_out))
    return pd.read_parquet(e_out), pd.read_parquet(a_out), summary


def test_released_entities_keep_synonyms_descriptions_and_natural_entity(tmp_path, caplog):
    ents, attrs, summary = _import_entities(tmp_path)
    assert list(ents.columns[:len(ire.ENTITY_COLUMNS)]) == ire.ENTITY_COLUMNS
    assert summary == {"entities": 7, "attributes": 2, "query_entities_missing": 1}  # Q1: the dropped row's
    assert "not in the table" in caplog.text  # Donald Duck's natural entity
    e = ents.set_index("qid")
    rabbit = e.loc["Q25851"]
    assert rabbit["label"] == "European rabbit" and rabbit["description"] == "species of mammal"
    assert list(rabbit["aliases"]) == ["common rabbit", "rabbit"]
    assert list(rabbit["common_names"]) == ["European rabbit", "coney"]
    assert list(rabbit["taxon_names"]) == ["Oryctolagus cuniculus"]
    assert rabbit["natural_type_qid"] == "Q729" and rabbit["natural_type_label"] == "animal"
    assert rabbit["is_living"] and rabbit["source"] == "released" and list(rabbit["roots"]) == []
    hammer = e.loc["Q25294"]  # type_description: the second definition
    assert hammer["description"] == "tool used for striking"
    assert hammer["natural_type_description"] == "hand tool with a heavy head on a handle"
    assert list(hammer["author_definitions"]) == ["tool used for striking", "hand tool with a heavy head on a handle"]
    assert hammer["natural_type_qid"] == "Q39546" and hammer["natural_type_label"] == "tool"
    assert not hammer["is_living"]
    aard = e.loc["wordnet:aardvark.n.01"]  # the authors' WordNet keys, verbatim
    assert aard["natural_type_qid"] == "wordnet:animal.n.01" and "ant bear" in list(aard["aliases"])
    assert aard["description"].startswith("nocturnal burrowing mammal")
    assert e.loc["Q6550", "natural_type_qid"] == "Q1114461" and e.loc["Q6550", "natural_type_label"] is None
    assert not any(q.startswith("wn:") for q in ents["qid"])
    # attributes.parquet: the query table's attribute rows, with their entity
    a = attrs.set_index("query")
    assert a.loc["running animal", "qid"] == "Q729" and a.loc["running animal", "attribute"] == "running"
    assert a.loc["running rabbit", "qid"] == "Q25851" and set(attrs["source"]) == {"released"}


def test_kg_texts_use_the_released_text_sources(tmp_path):
    """The point of the import: the text mix's candidates for a released query hold the authors' synonyms,
    descriptions and natural-entity texts (joined through the entity keys of queries.parquet)."""
    ents, attrs, _ = _import_entities(tmp_path)
    queries, _ = ir.released_queries(author_queries())
    cand = tm.build_text_candidates(ents, attrs, queries, kg_text_queries="all", with_sources=True)
    by_text = dict(zip(queries["text"], queries["query_id"]))
    c = cand.set_index("query_id")

    def texts(query, source=None):
        row = c.loc[by_text[query]]
        return {t for t, s in zip(row["texts"], row["sources"]) if source is None or s == source}

    assert texts("european rabbit", "entity_synonym") >= {"common rabbit", "coney", "Oryctolagus cuniculus"}
    assert texts("european rabbit", "entity_definition") == {"species of mammal"}
    assert texts("european rabbit", "parent_synonym") >= {"Animalia", "beast"}  # natural entity Q729
    assert "kingdom of multicellular eukaryotic organisms" in texts("european rabbit", "parent_definition")
    assert texts("aardvark", "entity_synonym") >= {"ant bear", "Orycteropus afer"}  # wordnet: key joins
    assert texts("aardvark", "parent_synonym") >= {"animate being", "creature"}
    assert texts("hammer", "entity_definition") == {"tool used for striking", "hand tool with a heavy head on a handle"}
    assert "tools" in texts("hammer", "parent_synonym")
    # attribute-only query: its entity (animal) gives the synonyms; attribute-noun: the rabbit's swapped in
    assert {"running beast", "beast running"} <= texts("running animal")
    assert "running coney" in texts("running rabbit")


def test_released_entities_schema_and_odd_rows(caplog):
    with pytest.raises(ValueError, match=r"e\.parquet: missing column\(s\) \['naturalentity'\]"):
        ire.released_entities(author_entities().drop(columns="naturalentity"), source="e.parquet")
    odd = author_entities().iloc[:2].copy()
    odd.at[1, "textsources"] = ["name", "aliases", "nickname", "aliases", "description"]
    with pytest.raises(ValueError, match=r"unknown text source\(s\) \['nickname'\]"):
        ire.released_entities(odd)
    extra = pd.DataFrame([
        {"entity": None, "entity_name": "x", "textvalues": ["x"], "textsources": ["name"], "naturalentity": None},
        {"entity": "http://www.wikidata.org/entity/Q25851", "entity_name": "dup", "textvalues": ["dup"],
         "textsources": ["name"], "naturalentity": "Q729"},
        {"entity": "Q5113", "entity_name": "bird", "textvalues": ["bird", "aves", " ", "Bird"],
         "textsources": ["name", "aliases", "aliases"], "naturalentity": "Q729"},
    ])
    e = ire.released_entities(pd.concat([author_entities(), extra], ignore_index=True)).set_index("qid")
    assert "no entity key" in caplog.text and "more than once" in caplog.text and "different lengths" in caplog.text
    assert e.loc["Q25851", "label"] == "European rabbit"  # first row wins over the IRI-spelled duplicate
    assert list(e.loc["Q5113", "aliases"]) == ["aves"]  # blank left out, the unpaired value dropped
    assert not e.loc["Q5113", "is_living"]  # no living query names it (none given)


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
    assert sorted(rabbit["qids"]) == ["Q25851", "Q729"] and rabbit["is_living"]  # Q729: the wd-attr query's
    assert sorted(rabbit["backends"]) == ["released_bing", "released_google"]
    assert (rabbit["width"], rabbit["height"]) == (1200, 768) and rabbit["licence"] is None

    aard = by_key["train000000003"]  # empty first link: keyed by the second
    assert aard["url"] == "https://img.example.org/aardvark.jpg" and list(aard["urls"]) == [aard["url"]]
    assert sorted(aard["qids"]) == ["Q6550", "wordnet:aardvark.n.01"]
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
    # the KG texts of the text mix come from the released entity table, with no KG job
    t = snakemake(wd, "-n", "results/entitynet_released/text_candidates.parquet", timeout=120)
    assert t.returncode == 0, t.stderr[-3000:]
    assert job_counts(t.stdout) == {"import_released_metadata": 1, "import_released_entities": 1,
                                    "text_candidates": 1}
    # with released_metadata.entities null they come from the KG again, WordNet entities included (wordnet.dir)
    kg_route = tmp_path / "kg_route.yaml"
    kg_route.write_text("datasets:\n  entitynet_released:\n    search:\n      released_metadata:\n"
                        "        entities: null\n")
    k = snakemake(wd, "-n", "results/entitynet_released/text_candidates.parquet", "--configfile", str(kg_route),
                  timeout=120)
    assert k.returncode == 0, k.stderr[-3000:]
    assert job_counts(k.stdout) == {"import_released_metadata": 1, "kg_dump": 1, "kg_wordnet": 1, "kg_entities": 1,
                                    "kg_attributes": 1, "text_candidates": 1}
    # the searched datasets still merge their search hits
    d = snakemake(wd, "-n", "results/demo/urls.parquet", timeout=120)
    assert d.returncode == 0 and job_counts(d.stdout).get("merge_search") == 1
    assert "import_released_metadata" not in d.stdout
    # and the rule really runs its script
    run = snakemake(wd, "--cores", "1", "results/entitynet_released/urls.parquet", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(pd.read_parquet(wd / "results/entitynet_released/urls.parquet")) == 17
    assert len(pd.read_parquet(wd / "results/entitynet_released/queries.parquet")) == 6
    run = snakemake(wd, "--cores", "1", "results/entitynet_released/entities.parquet", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    ents = pd.read_parquet(wd / "results/entitynet_released/entities.parquet")
    assert len(ents) == 7 and "wordnet:aardvark.n.01" in set(ents["qid"])
    assert len(pd.read_parquet(wd / "results/entitynet_released/attributes.parquet")) == 2
    shutil.rmtree(wd / ".snakemake", ignore_errors=True)
