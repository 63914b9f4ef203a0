"""KG (no-LLM) mode: living natural types, living clean-up, visuality filter, fungi and per-root exclusions, living
attribute hints, and the demo's query kinds, on the real Wikidata record shapes of the bundled demo extract."""
import pandas as pd
import pytest
import yaml

from lib.search import query_builder as bq
import kg_attributes as ka
from lib.kg.kg_entity_table import build_entities
from lib.kg.kg_graph import Graph
from lib.kg.kg_natural_types import common_name_mask
from lib.kg.kg_selection import CLEANUP_DEFAULT, clean_living, select_living
from lib.kg.kg_tables import fetch_tables
from lib.kg import kg_queries as kq
from lib.common import workflow_config as wc
from conftest import REPO
from lib.kg.sparql_client import EmbeddedSparql
from test_kg import GENERIC, store_from

DEMO_TTL = REPO / "resources/demo/kg/extract.ttl"
ANIMAL_EXCLUDE = {"Q729": ["Q5", "Q24334299", "Q795052"], "Q756": ["Q4886", "Q795052"]}


@pytest.fixture(scope="module")
def demo_tables():
    s = EmbeddedSparql()
    s.load(DEMO_TTL)
    return s, fetch_tables(s, "en")


@pytest.fixture(scope="module")
def demo_living(demo_tables):
    """Living entities of the demo extract (animals and fungi), default KG-mode rules."""
    _, tables = demo_tables
    return build_entities(tables, [], ["Q729", "Q764"], "en", 0, [], False, None, GENERIC,
                          exclude_by_root=ANIMAL_EXCLUDE, coordinate_roots=["Q756"],
                          cleanup=list(CLEANUP_DEFAULT), living_rule="nearest_common_name").set_index("qid")


def test_lion_natural_type_is_big_cat_not_animal(demo_tables, demo_living):
    """Lion (Q140): the real record has P279 big cat and P171 Panthera (label = its P225 taxon name, so not a common
    name). The nearest common-name ancestor is big cat; the old most-sitelinks rule gives something else."""
    assert demo_living.loc["Q140", "natural_type_qid"] == "Q6667323"
    assert demo_living.loc["Q140", "natural_type_label"].lower() == "big cat"
    for q in ("Q19939", "Q34706", "Q35694"):  # tiger, leopard, jaguar: the same real shape
        assert demo_living.loc[q, "natural_type_qid"] == "Q6667323"
    _, tables = demo_tables
    old = build_entities(tables, [], ["Q729"], "en", 0, [], False, None, GENERIC,
                         living_rule="most_sitelinks").set_index("qid")
    assert old.loc["Q140", "natural_type_qid"] != "Q6667323"
    # no living natural type is the bare root when a common-name ancestor exists (lion, tiger …)
    assert (demo_living["natural_type_qid"] != "Q729").mean() > 0.9


def test_nearest_common_name_respects_min_sitelinks():
    """A candidate below the sitelink minimum is skipped for the next common-name ancestor up."""
    ttl = """
wd:Q10 rdfs:label "animal"@en . wd:Q10 wikibase:sitelinks 300 .
wd:Q11 wdt:P171 wd:Q10 ; rdfs:label "mammal"@en ; wdt:P225 "Mammalia" ; wikibase:sitelinks 200 .
wd:Q12 wdt:P171 wd:Q11 ; rdfs:label "Felidae"@en ; wdt:P225 "Felidae" ; wikibase:sitelinks 150 .
wd:Q13 wdt:P279 wd:Q12 ; rdfs:label "big cat"@en ; wikibase:sitelinks 8 .
wd:Q14 wdt:P279 wd:Q13 ; wdt:P171 wd:Q12 ; rdfs:label "lion"@en ; wdt:P225 "Panthera leo" ; wikibase:sitelinks 250 .
"""
    tables = fetch_tables(store_from(ttl), "en")

    def nt(min_links):
        e = build_entities(tables, [], ["Q10"], "en", 0, [], False, None, GENERIC,
                           living_rule="nearest_common_name", living_type_min_sitelinks=min_links)
        return e.set_index("qid").loc["Q14", "natural_type_qid"]

    assert nt(0) == "Q13"   # big cat, one hop
    assert nt(20) == "Q11"  # big cat has 8 sitelinks; Felidae is a Latin taxon name: mammal
    assert nt(250) == "Q10"  # only the root is left


def test_common_name_mask_on_taxon_shapes():
    ttl = """
wd:Q1 rdfs:label "Panthera"@en ; wdt:P225 "Panthera" ; wdt:P1843 "big cats"@en .
wd:Q2 rdfs:label "lion"@en ; wdt:P225 "Panthera leo" .
wd:Q3 rdfs:label "Felidae"@en .
wd:Q4 rdfs:label "Dog"@en .
wd:Q5 rdfs:label "cat"@en ; wdt:P225 "Cat" ; wdt:P1843 "cat"@en .
wd:Q1 wdt:P171 wd:Q3 . wd:Q2 wdt:P171 wd:Q1 . wd:Q4 wdt:P279 wd:Q3 . wd:Q5 wdt:P279 wd:Q3 .
"""
    tables = fetch_tables(store_from(ttl), "en")
    g = Graph(tables.edges, tables.info)
    m = dict(zip(g.nodes, common_name_mask(g, tables.names)))
    assert m == {"Q1": False, "Q2": True, "Q3": False, "Q4": True, "Q5": True}


AUTHORS_FILTER_EXAMPLES = [  # the few-shot answers of the authors' living filter (name, description, keep)
    ("house cat", "domesticated feline", True),
    ("black tiger", "color of tiger", False),
    ("alligator leather", "leather from alligator", False),
    ("Pomeranian Show Crest Highflyer", "pigeon breed", True),
    ("Tuna", "House cat and Internet celebrity from #BlackCatsofTikTok", False),
    ("banana", "elongated, edible fruit produced by several kinds of large herbaceous flowering plants in the genus Musa",
     True),
    ("cottonseed oil", "cooking oil extracted from the seeds of cotton plants of various species", False),
    ("Quercus ilex", "Oak tree species native to the Mediterranean", True),
    ("bouquet garni", "herb mixture used in cooking", False),
]


def test_cleanup_matches_the_authors_filter_examples():
    df = pd.DataFrame(AUTHORS_FILTER_EXAMPLES, columns=["label", "description", "keep"])
    kept = clean_living(df, CLEANUP_DEFAULT)
    assert list(kept["label"]) == list(df.loc[df["keep"], "label"])
    assert "Pomeranian Show Crest Highflyer" not in set(clean_living(df, ["breed"])["label"])
    assert len(clean_living(df, [])) == len(df)  # off
    with pytest.raises(ValueError, match="unknown kind"):
        clean_living(df, ["colour"])


def test_cultivar_and_colour_variant_are_cleaned_in_selection():
    ttl = """
wd:Q10 rdfs:label "plant"@en . wd:Q20 rdfs:label "animal"@en .
wd:Q11 wdt:P171 wd:Q10 ; rdfs:label "Malus domestica"@en ; schema:description "species of plant"@en .
wd:Q12 wdt:P171 wd:Q11 ; rdfs:label "Granny Smith"@en ; schema:description "apple cultivar"@en .
wd:Q21 wdt:P171 wd:Q20 ; rdfs:label "tiger"@en ; schema:description "species of big cat"@en .
wd:Q22 wdt:P171 wd:Q21 ; rdfs:label "white tiger"@en ; schema:description "colour variant of tiger"@en .
"""
    tables = fetch_tables(store_from(ttl), "en")
    on = build_entities(tables, [], ["Q10", "Q20"], "en", 0, [], False, None, GENERIC, cleanup=CLEANUP_DEFAULT)
    off = build_entities(tables, [], ["Q10", "Q20"], "en", 0, [], False, None, GENERIC, cleanup=[])
    assert {"Q12", "Q22"} <= set(off["qid"])
    assert not {"Q12", "Q22"} & set(on["qid"]) and {"Q11", "Q21"} <= set(on["qid"])


def test_per_root_exclusions_and_coordinates():
    """P625 excludes under plants only; each root's own MINUS list; fruits get their plant root's MINUS."""
    ttl = """
wd:Q10 rdfs:label "plant"@en . wd:Q20 rdfs:label "animal"@en . wd:Q4886 rdfs:label "cultivar"@en .
wd:Q11 wdt:P171 wd:Q10 ; rdfs:label "oak"@en .
wd:Q12 wdt:P31 wd:Q11 ; rdfs:label "Major Oak"@en ; wdt:P625 "Point(-1.07 53.2)" .
wd:Q21 wdt:P171 wd:Q20 ; rdfs:label "coral"@en ; wdt:P625 "Point(1 2)" .
wd:Q22 wdt:P171 wd:Q20 ; rdfs:label "cultivated moth"@en ; wdt:P31 wd:Q4886 .
wd:Q31 wdt:P31 wd:Q3314483 ; wdt:P1582 wd:Q11 ; wdt:P31 wd:Q4886 ; rdfs:label "acorn cultivar"@en .
"""
    s = store_from(ttl)
    tables = fetch_tables(s, "en")
    by_root = {"Q10": ["Q4886"], "Q20": []}
    new = build_entities(tables, [], ["Q10", "Q20"], "en", 0, [], False, None, GENERIC,
                         exclude_by_root=by_root, coordinate_roots=["Q10"])
    assert "Q21" in set(new["qid"]) and "Q22" in set(new["qid"])  # animals: no P625 rule, no cultivar rule
    assert not {"Q12", "Q31"} & set(new["qid"])  # individual tree (P625), fruit that is a cultivar
    union = build_entities(tables, [], ["Q10", "Q20"], "en", 0, ["Q4886"], False, None, GENERIC)
    assert not {"Q21", "Q22"} & set(union["qid"])  # the old union drops the coordinate coral and the moth
    # the SPARQL texts give the same selection
    ref = select_living(s, ["Q10", "Q20"], "en", [], False, None, by_root, ["Q10"])
    assert set(ref["qid"]) == set(new[new["is_living"]]["qid"])


def test_visual_filter():
    ttl = """
wd:Q1 rdfs:label "tool"@en . wd:Q7184903 rdfs:label "abstract object"@en .
wd:Q2 wdt:P279 wd:Q1 ; rdfs:label "hammer"@en ; wdt:P18 "Hammer.jpg" .
wd:Q3 wdt:P279 wd:Q1 ; wdt:P279 wd:Q6 ; rdfs:label "tool concept"@en .
wd:Q6 wdt:P279 wd:Q7 . wd:Q7 wdt:P279 wd:Q8 . wd:Q8 wdt:P279 wd:Q7184903 .
wd:Q9 wdt:P279 wd:Q1 ; wdt:P279 wd:Q6 ; rdfs:label "hand fan"@en ; wdt:P18 "Fan.jpg" .
wd:Q4 wdt:P279 wd:Q1 ; rdfs:label "obscure tool"@en ; wikibase:sitelinks 3 .
wd:Q5 wdt:P279 wd:Q1 ; rdfs:label "famous tool"@en ; wikibase:sitelinks 30 .
"""
    tables = fetch_tables(store_from(ttl), "en")
    vis = {"enabled": True, "abstract_classes": ["Q7184903"], "min_sitelinks_without_image": 10}
    on = set(build_entities(tables, ["Q1"], [], "en", 0, [], False, None, GENERIC, visual=vis)["qid"])
    assert {"Q2", "Q5", "Q9"} <= on and not {"Q3", "Q4"} & on  # Q9: under the abstract class, but depicted
    off = set(build_entities(tables, ["Q1"], [], "en", 0, [], False, None, GENERIC,
                             visual={**vis, "enabled": False})["qid"])
    assert {"Q3", "Q4"} <= off


def test_dump_keeps_the_long_paths_to_abstract_classes(tmp_path):
    """The abstract class is 4 P279 hops above Q3 (the edges facet keeps 3): the abstract facet keeps the path."""
    from kg_dump import dump

    ttl = tmp_path / "kg.ttl"
    ttl.write_text(__import__("test_kg").PREFIX + """
wd:Q1 rdfs:label "tool"@en . wd:Q7184903 rdfs:label "abstract object"@en .
wd:Q3 wdt:P279 wd:Q1 ; wdt:P279 wd:Q6 ; rdfs:label "tool concept"@en .
wd:Q6 wdt:P279 wd:Q7 . wd:Q7 wdt:P279 wd:Q8 . wd:Q8 wdt:P279 wd:Q7184903 .
wd:Q4 wdt:P279 wd:Q1 ; rdfs:label "hammer"@en .
""")
    vis = {"enabled": True, "abstract_classes": ["Q7184903"], "min_sitelinks_without_image": 0}
    for abstract, kept in (([], {"Q1", "Q3", "Q4"}), (["Q7184903"], {"Q1", "Q4"})):
        out = tmp_path / f"x{len(abstract)}.nt.gz"
        dump(f"file:{ttl}", ["Q1"], [], "en", 100, str(out), str(tmp_path / "p.json"), "t", abstract_classes=abstract)
        ents = build_entities(str(out), ["Q1"], [], "en", 0, [], False, None, GENERIC, visual=vis)
        assert set(ents["qid"]) == kept


def config():
    return yaml.safe_load(open(REPO / "config/config.yaml"))


def test_fungi_off_by_default_on_in_demo(demo_living):
    cfg = config()
    ent = wc.dataset_config(cfg, "entitynet")
    assert "Q764" not in ent["living_roots"] and ent["living"]["include_fungi"] is False
    assert ent["living"]["exclude_by_root"]["Q729"] == ["Q5", "Q24334299", "Q795052"]
    assert ent["living"]["exclude_coordinates_roots"] == ["Q756"]
    assert wc.dataset_config(cfg, "demo")["living"]["include_fungi"] is True
    assert demo_living.loc["Q764", "is_living"]  # the real fungus record, when fungi are on
    rules = (REPO / "rules/kg.smk").read_text()
    assert rules.count("living_roots=lambda w: living_roots_of(w.dataset)") == 2


def test_living_hints_are_dumped_and_become_attributes(demo_tables, demo_living):
    q = kq.dump_queries([], ["Q729"], "en")
    assert "living/Q729/hints" in q and "wdt:P2974" in q["living/Q729/hints"]
    store, _ = demo_tables
    hints = ka.load_hints(store, "en")
    attrs = ka.attributes_from_hints(hints, demo_living.reset_index(), 10)
    tiger = set(attrs.loc[attrs["qid"] == "Q19939", "query"])
    assert {"orange tiger", "tiger in forest", "tiger eating ungulate"} <= tiger
    assert set(attrs.loc[attrs["qid"] == "Q19939", "category"]) == {"Color", "Environment", "Other"}


def test_demo_query_kinds(tmp_path):
    """The demo's KG (dump -> entities -> attributes -> queries, demo config) gives at least 5 of the 7 kinds.
    Before the living hints and the records it gave 2 (wd-noun-world, wd-noun-living)."""
    from kg_dump import dump

    d = wc.dataset_config(config(), "demo")
    living_roots = d["living_roots"] + (["Q764"] if d["living"]["include_fungi"] else [])
    dump(d["kg"]["endpoint"].replace("file:", f"file:{REPO}/"), d["roots"], living_roots, "en", 5000,
         str(tmp_path / "x.nt.gz"), str(tmp_path / "p.json"), "test")
    ents = build_entities(
        str(tmp_path / "x.nt.gz"), d["roots"], living_roots, "en", d["min_sitelinks"], d["living"]["exclude"],
        d["living"]["require_image"], d["living"]["max_per_root"], d["natural_types"]["generic_classes"],
        exclude_by_root=d["living"]["exclude_by_root"], coordinate_roots=d["living"]["exclude_coordinates_roots"],
        cleanup=d["living"]["cleanup"], visual=d["visual_filter"], living_rule=d["natural_types"]["living_rule"],
        living_type_min_sitelinks=d["natural_types"]["living_min_sitelinks"])
    s = EmbeddedSparql()
    s.load(tmp_path / "x.nt.gz")
    attrs = ka.attributes_from_hints(ka.load_hints(s, "en"), ents, 10)
    queries = bq.build_queries(ents, attrs, d["queries"]["kinds"])
    kinds = set(queries["kind"])
    assert len(kinds) >= 5, kinds
    # through the dump: big cat is a mixed-path ancestor (P279 of the taxon Felidae), kept by the living facets
    assert ents.set_index("qid").loc["Q140", "natural_type_qid"] == "Q6667323"
    assert {"wd-attr-living", "wd-attrnoun-living"} <= kinds
