"""KG stage: query validation, entity selection on the bundled extract and on synthetic graphs (cycles, shapes)."""
import gzip

import pandas as pd
import pytest

import kg_attributes as ka
from lib.kg.kg_entity_table import EmptyRootError, build_entities
from lib.kg.kg_selection import select_living, select_world
from lib.kg import kg_queries as kq
from conftest import REPO
from kg_dump import dump
from lib.kg.sparql_client import EmbeddedSparql, check_lang, check_qid

DEMO_TTL = REPO / "resources/demo/kg/extract.ttl"
GENERIC = ["Q223557", "Q488383", "Q35120", "Q4406616"]
EXCLUDE = ["Q5", "Q24334299", "Q795052", "Q4886"]

PREFIX = """@prefix wd: <http://www.wikidata.org/entity/> .
@prefix wdt: <http://www.wikidata.org/prop/direct/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix schema: <http://schema.org/> .
@prefix wikibase: <http://wikiba.se/ontology#> .
@prefix data: <https://www.wikidata.org/wiki/Special:EntityData/> .
"""


def store_from(ttl: str) -> EmbeddedSparql:
    s = EmbeddedSparql()
    s.store.load(input=(PREFIX + ttl).encode(), format=__import__("pyoxigraph").RdfFormat.TURTLE)
    return s


@pytest.mark.parametrize("bad", ["Q0", "q42", "Q42 }", 'Q1" . ?s ?p ?o', "P31", "", None, "Q12a"])
def test_check_qid_rejects(bad):
    with pytest.raises(ValueError, match="not a Wikidata item id"):
        check_qid(bad)


@pytest.mark.parametrize("bad", ["EN", "english", 'en") || true || ("', "e", ""])
def test_check_lang_rejects(bad):
    with pytest.raises(ValueError, match="language tag"):
        check_lang(bad)


def test_injection_never_reaches_query_text():
    with pytest.raises(ValueError):
        kq.world_entities_query("Q1 } ; DROP ALL ; {", "en")
    with pytest.raises(ValueError):
        kq.dump_queries(["Q729"], [], 'en"} UNION {')


SYNTH = """
wd:Q1 rdfs:label "tool"@en .
wd:Q2 wdt:P279 wd:Q1 ; rdfs:label "hammer"@en ; rdfs:label "Hammer"@de ; schema:description "hand tool"@en ;
      skos:altLabel "mallet"@en .
data:Q2 schema:about wd:Q2 ; wikibase:sitelinks 40 .
wd:Q3 wdt:P279 wd:Q2 ; rdfs:label "claw hammer"@en ; wikibase:sitelinks 12 .
wd:Q4 wdt:P279 wd:Q3 ; rdfs:label "tiny hammer"@en .
wd:Q2 wdt:P279 wd:Q3 .
wd:Q5 wdt:P31 wd:Q2 ; rdfs:label "Thor's hammer Mjolnir"@en ; wikibase:sitelinks 99 .
wd:Q6 wdt:P279 wd:Q1 .
wd:Q10 rdfs:label "animal"@en .
wd:Q11 wdt:P171 wd:Q10 ; rdfs:label "rabbit"@en ; wdt:P1843 "coney"@en ; wdt:P225 "Oryctolagus cuniculus" .
wd:Q12 wdt:P31 wd:Q795052 ; wdt:P279 wd:Q11 ; rdfs:label "Famous Rabbit"@en .
wd:Q13 wdt:P171 wd:Q11 ; rdfs:label "lone tree"@en ; wdt:P625 "Point(1 2)" .
wd:Q14 wdt:P279 wd:Q10 ; rdfs:label "mammal"@en .
wd:Q15 wdt:P171 wd:Q11 ; wdt:P279 wd:Q14 ; rdfs:label "European rabbit"@en .
wd:Q2 wdt:P462 wd:Q20 . wd:Q20 rdfs:label "Brown"@en .
wd:Q2 wdt:P527 wd:Q21 . wd:Q21 rdfs:label "handle"@en .
"""


def test_world_selection_cycles_sitelinks_and_no_instances():
    s = store_from(SYNTH)
    world = select_world(s, ["Q1"], "en", min_sitelinks=0)
    assert set(world["qid"]) == {"Q1", "Q2", "Q3", "Q4"}  # P279 cycle Q2<->Q3 handled; Q5 instance excluded
    assert world.set_index("qid").at["Q2", "sitelinks"] == 40  # data-node shape
    assert world.set_index("qid").at["Q3", "sitelinks"] == 12  # item shape (WDQS)
    strict = select_world(s, ["Q1"], "en", min_sitelinks=10)
    assert set(strict["qid"]) == {"Q2", "Q3"}


def test_living_selection_excludes_individuals_and_coordinates():
    s = store_from(SYNTH)
    living = select_living(s, ["Q10"], "en", ["Q795052"], require_image=False, max_per_root=None)
    assert set(living["qid"]) == {"Q10", "Q11", "Q14", "Q15"}  # Q12 individual, Q13 has P625


def test_build_entities_multi_root_names_and_natural_types():
    s = store_from(SYNTH)
    ents = build_entities(s, ["Q1", "Q2"], ["Q10"], "en", 0, ["Q795052"], False, None, GENERIC).set_index("qid")
    assert ents.at["Q3", "roots"] == ["Q1", "Q2"]  # kept once with all roots
    assert ents.at["Q2", "aliases"] == ["mallet"]
    assert ents.at["Q11", "common_names"] == ["coney"] and ents.at["Q11", "taxon_names"] == ["Oryctolagus cuniculus"]
    assert ents.at["Q11", "is_living"] and not ents.at["Q2", "is_living"]
    assert ents.at["Q4", "natural_type_qid"] == "Q2"  # most sitelinks among 1-3 hops up
    assert ents.at["Q15", "natural_type_label"] == "mammal"  # living: ancestor that is P279* of the root
    assert ents.at["Q11", "natural_type_label"] == "animal"  # default: the living root


def test_attributes_from_hints_and_world_cap():
    s = store_from(SYNTH)
    ents = build_entities(s, ["Q1"], [], "en", 0, [], False, None, GENERIC)
    rows = s.select(kq.hints_query("en"))
    hints = pd.DataFrame({"ent": [r["ent"]["value"].rsplit("/", 1)[1] for r in rows],
                          "p": [r["p"]["value"] for r in rows], "vlabel": [r["vlabel"]["value"] for r in rows]})
    attrs = ka.attributes_from_hints(hints, ents, max_per_category=10)
    got = set(zip(attrs["category"], attrs["attribute"], attrs["query"]))
    assert got == {("Color", "brown", "brown hammer"), ("Parts", "handle", "hammer handle")}
    capped = ka.cap_world(attrs, ents.set_index("qid")["is_living"], 1, seed=42)
    assert len(capped) == 1


def test_demo_extract_dump_and_entities(tmp_path):
    roots = ["Q39546", "Q2424752"]
    prov = dump(f"file:{DEMO_TTL}", roots, ["Q729"], "en", 200, str(tmp_path / "x.nt.gz"),
                str(tmp_path / "p.json"), "test")
    assert prov["triples"] > 1000 and prov["facets"]["living/Q729/edges"]["pages"] > 1  # paging exercised
    with gzip.open(tmp_path / "x.nt.gz", "rt") as fh:
        assert all(line.endswith(" .\n") for line in fh)
    s = EmbeddedSparql()
    s.load(tmp_path / "x.nt.gz")
    ents = build_entities(s, roots, ["Q729"], "en", 0, EXCLUDE, False, None, GENERIC).set_index("qid")
    assert {"Q25294", "Q161071", "Q81727"} <= set(ents.index)  # hammer, screwdriver, cup
    assert ents.loc["Q33609", "is_living"]  # polar bear, via P171+/P279+ under Q729
    assert "Q257102" not in ents.index  # the disambiguation page "Seal" is under no root


def test_dump_refuses_empty_result(tmp_path):
    with pytest.raises(RuntimeError, match="no triples"):
        dump(f"file:{DEMO_TTL}", ["Q999999999"], [], "en", 100, str(tmp_path / "x.nt.gz"),
             str(tmp_path / "p.json"), "test")
    assert not (tmp_path / "x.nt.gz").exists()


def test_a_mistyped_root_stops_with_the_nearest_qids():
    """Q1 typed as Q100 (a QID not in the dump): an error naming it and the dump's nearest QIDs with labels."""
    s = store_from(SYNTH)
    with pytest.raises(EmptyRootError, match=r"Q100 is not in the dump; nearest QIDs in it: .*Q10 \('animal'\)"):
        build_entities(s, ["Q1", "Q100"], ["Q10"], "en", 0, [], False, None, GENERIC, allow_empty_roots=[])
    with pytest.raises(EmptyRootError, match=r"Q2 \('hammer'\) is in the dump but selects no entity"):
        build_entities(s, ["Q1", "Q2"], [], "en", 50, [], False, None, GENERIC, allow_empty_roots=["Q1"])
    ents = build_entities(s, ["Q1", "Q100"], ["Q10"], "en", 0, [], False, None, GENERIC,
                          allow_empty_roots=["Q100"])  # a root the dump rightly lacks
    assert "Q3" in set(ents["qid"])
