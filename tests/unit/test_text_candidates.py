"""Tests of scripts/lib/train/text_mix.py and scripts/lib/train/text_sampler.py: the paper's per-sample text mix
(docs/PAPER_NOTES.md §11).

Expected weights are written out by hand from the tables of docs/PAPER_NOTES.md §11, never recomputed with the
module's own helpers.
"""
from __future__ import annotations

import functools
import json
import os
import pickle
import random
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lib.common.workflow_config import dataset_config
from lib.train import text_mix as tm
from lib.train import text_sampler as ts


# ---------------------------------------------------------------------------------------------------------------
# fixtures and helpers

#: ``kg_text_queries`` of a dataset that sets none: the schema's default (what the rule passes, resolved)
SCHEMA_KG_TEXT_QUERIES = dataset_config({"datasets": {"x": {}}}, "x")["kg_text_queries"]
build_text_candidates = functools.partial(tm.build_text_candidates, kg_text_queries=SCHEMA_KG_TEXT_QUERIES)


def ent(qid, label, description=None, aliases=(), common_names=(), taxon_names=(), nt_qid=None, nt_label=None,
        nt_description=None):
    return dict(qid=qid, label=label, description=description, aliases=list(aliases),
                common_names=list(common_names), taxon_names=list(taxon_names), sitelinks=10, roots=[],
                is_living=False, natural_type_qid=nt_qid, natural_type_label=nt_label,
                natural_type_description=nt_description, image=None, source="wikidata")


def qry(query_id, text, kind, qids, attribute=None, natural_type=None):
    return dict(query_id=query_id, text=text, kind=kind, qids=list(qids), attribute=attribute,
                natural_type=natural_type, is_living=False, or_terms="", exclude_terms="", image_type="photo",
                count=1)


def frame(rows):
    return pd.DataFrame(rows)


def as_dict(df, query_id):
    row = df.set_index("query_id").loc[query_id]
    assert len(row["texts"]) == len(row["weights"])
    assert len(set(row["texts"])) == len(row["texts"]), "duplicate texts in candidates"
    return dict(zip(row["texts"], row["weights"]))


def normalised(raw: dict) -> dict:
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def assert_weights(got: dict, expected: dict):
    assert set(got) == set(expected), (sorted(got), sorted(expected))
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-12)


def shares_match(counts: Counter, probs: dict, n: int) -> bool:
    """Observed counts agree with probabilities: chi-square p > 1e-6 AND every cell within 5 standard errors.

    Any outcome outside ``probs`` fails the check.
    """
    if set(counts) - set(probs):
        return False
    keys = sorted(probs)
    p = np.array([probs[k] for k in keys], dtype=float)
    p = p / p.sum()
    obs = np.array([counts.get(k, 0) for k in keys], dtype=float)
    if np.any(obs[p == 0] > 0):  # an outcome that should be impossible
        return False
    obs, p = obs[p > 0], p[p > 0]
    exp = p * n
    _, pval = stats.chisquare(obs, exp)
    se = np.sqrt(n * p * (1 - p))
    z = np.abs(obs - exp) / np.where(se > 0, se, 1.0)
    return bool(pval > 1e-6 and z.max() < 5.0)


RABBIT_ENTITIES = [
    ent("Q25851", "European rabbit", "species of mammal", aliases=["coney", "Oryctolagus cuniculus"],
        taxon_names=["Oryctolagus cuniculus"], nt_qid="Q729", nt_label="animal",
        nt_description="multicellular organism"),
    ent("Q729", "animal", "multicellular organism", aliases=["Animalia"]),
]


def rabbit_noun_expected() -> dict:
    # h = 0.1 (animal). keep 0.4; 3 distinct entity synonyms share 0.6*0.9; 2 parent synonyms share 0.6*0.1;
    # 2 entity definitions share 0.1*0.9; 1 parent definition gets 0.1*0.1.
    # "European rabbit" (0.18) is the query "european rabbit" (0.4) to the tokenizer: keeps 0.4, query spelling.
    # "multicellular organism" is an entity definition (0.045) and the parent definition (0.01): keeps 0.045.
    return normalised({"european rabbit": 0.4, "coney": 0.18, "Oryctolagus cuniculus": 0.18,
                       "animal": 0.03, "Animalia": 0.03, "species of mammal": 0.045,
                       "multicellular organism": 0.045})


# ---------------------------------------------------------------------------------------------------------------
# candidates: noun queries


def test_noun_query_weights_by_hand():
    q = frame([qry("q1", "european rabbit", "wd-noun-living", ["Q25851"], natural_type="animal")])
    df = build_text_candidates(frame(RABBIT_ENTITIES), None, q)
    assert list(df.columns) == ["query_id", "texts", "weights"]
    got = as_dict(df, "q1")
    assert_weights(got, rabbit_noun_expected())
    assert list(df.iloc[0]["weights"]) == sorted(df.iloc[0]["weights"], reverse=True)


@pytest.mark.parametrize("nt_qid,h", [("Q729", 0.1), ("Q756", 0.1), ("wordnet:animal.n.01", 0.1), ("wn:animal.n.01", 0.1),
                                      ("wordnet:plant.n.02", 0.1), ("Q11460", 0.2), ("Q5113", 0.2)])
def test_hierarchy_chance_switch(nt_qid, h):
    ents = [ent("Q1", "thing", aliases=["thingy"], nt_qid=nt_qid, nt_label="kind"),
            ent(nt_qid, "kind", aliases=["sort"])]
    q = frame([qry("q", "thing", "wd-noun-world", ["Q1"], natural_type="kind")])
    got = as_dict(build_text_candidates(frame(ents), None, q), "q")
    # keep 0.4; entity synonyms thing/thingy share 0.6(1-h); parent kind/sort share 0.6h; no definitions
    expected = normalised({"thing": max(0.4, 0.6 * (1 - h) / 2), "thingy": 0.6 * (1 - h) / 2,
                           "kind": 0.6 * h / 2, "sort": 0.6 * h / 2})
    assert_weights(got, expected)


def test_hierarchy_chances_are_parameters():
    ents = [ent("Q1", "thing", aliases=["thingy"], nt_qid="Q729", nt_label="animal"), ent("Q729", "animal")]
    q = frame([qry("q", "thing", "wd-noun-world", ["Q1"], natural_type="animal")])
    got = as_dict(build_text_candidates(frame(ents), None, q, hierarchy_chance_generic=0.5,
                                           hierarchy_chance_living=0.25), "q")
    assert_weights(got, normalised({"thing": 0.4, "thingy": 0.6 * 0.75 / 2, "animal": 0.6 * 0.25}))


def test_parent_without_entity_row_uses_natural_type_label_and_description():
    ents = [ent("Q1", "kettle", "device to boil water", nt_qid="Q987", nt_label="home appliance",
                nt_description="machine used in the household")]
    q = frame([qry("q", "kettle", "wd-noun-world", ["Q1"], natural_type="home appliance")])
    got = as_dict(build_text_candidates(frame(ents), None, q), "q")
    # guard off (default): keep 0.4, synonym 0.6; h = 0.2
    # kettle: max(0.4, 0.6*0.8) = 0.48; parent synonym "home appliance" 0.6*0.2
    # entity defs (description + type description) share 0.1*0.8; parent def (type description) 0.1*0.2
    expected = normalised({"kettle": 0.48, "home appliance": 0.12, "device to boil water": 0.04,
                           "machine used in the household": 0.04})
    assert_weights(got, expected)
    # guard on (one synonym: 0.6/1 > 0.4): keep 0.5, synonym 0.5; kettle max(0.5, 0.5*0.8), parent 0.5*0.2
    on = as_dict(build_text_candidates(frame(ents), None, q, config=tm.TextMixConfig(guard=True)), "q")
    assert_weights(on, normalised({"kettle": 0.5, "home appliance": 0.1, "device to boil water": 0.04,
                                   "machine used in the household": 0.04}))


def test_duplicate_strings_keep_highest_weight_not_sum():
    # "beast" is both an entity alias (0.6*0.8/3) and the parent's alias (0.6*0.2/2)
    ents = [ent("Q1", "wolf", aliases=["gray wolf", "Beast"], nt_qid="Q2", nt_label="canine"),
            ent("Q2", "canine", aliases=["beast"])]
    q = frame([qry("q", "wolf", "wd-noun-world", ["Q1"], natural_type="canine")])
    got = as_dict(build_text_candidates(frame(ents), None, q), "q")
    e, p = 0.6 * 0.8 / 3, 0.6 * 0.2 / 2
    expected = normalised({"wolf": 0.4, "gray wolf": e, "Beast": max(e, p), "canine": p})
    assert_weights(got, expected)
    summed = normalised({"wolf": 0.4, "gray wolf": e, "Beast": e + p, "canine": p})
    assert got["Beast"] != pytest.approx(summed["Beast"], rel=1e-3)


def test_guard_fires_for_single_synonym_when_switched_on_and_is_off_by_default():
    ents = [ent("wordnet:aardvark.n.01", "aardvark", nt_qid="wordnet:animal.n.01", nt_label="animal")]
    q = frame([qry("q", "ant bear", "wordnet-noun-living", ["wordnet:aardvark.n.01"], natural_type="animal")])
    on = tm.TextMixConfig(guard=True)
    got = as_dict(build_text_candidates(frame(ents), None, q, config=on), "q")
    # per-synonym 0.6/1 > keep 0.4 -> both 0.5; h = 0.1 (wordnet:animal.n.01)
    assert_weights(got, normalised({"ant bear": 0.5, "aardvark": 0.45, "animal": 0.05}))
    # the authors' code never fires (the paper's numbers): keep 0.4, synonym 0.6; that is the default
    assert tm.TextMixConfig().guard is False
    for config in (None, tm.TextMixConfig(guard=False)):
        got_off = as_dict(build_text_candidates(frame(ents), None, q, config=config), "q")
        assert_weights(got_off, normalised({"ant bear": 0.4, "aardvark": 0.54, "animal": 0.06}))


def test_guard_does_not_fire_with_two_synonyms():
    ents = [ent("Q1", "aardvark", aliases=["antbear"], nt_qid="Q729", nt_label="animal")]
    q = frame([qry("q", "orycteropus", "wd-noun-living", ["Q1"], natural_type="animal")])
    got = as_dict(build_text_candidates(frame(ents), None, q), "q")
    # 0.6/2 = 0.3 < 0.4: unchanged
    assert_weights(got, normalised({"orycteropus": 0.4, "aardvark": 0.27, "antbear": 0.27, "animal": 0.06}))


def test_noun_query_with_several_entities_uses_their_union():
    ents = [ent("wordnet:a.n.01", "jack", "a male donkey", nt_qid="wordnet:animal.n.01", nt_label="animal"),
            ent("wordnet:a.n.02", "jack", "a young male ass", aliases=["jackass"], nt_qid="wordnet:animal.n.01",
                nt_label="animal")]
    q = frame([qry("q", "jack", "wordnet-noun-living", ["wordnet:a.n.01", "wordnet:a.n.02"], natural_type="animal")])
    got = as_dict(build_text_candidates(frame(ents), None, q), "q")
    # entity synonyms {jack, jackass}: 0.3 each < 0.4 (no guard); h=0.1; defs: two descriptions share 0.09
    assert_weights(got, normalised({"jack": 0.4, "jackass": 0.27, "animal": 0.06, "a male donkey": 0.045,
                                    "a young male ass": 0.045}))


# ---------------------------------------------------------------------------------------------------------------
# candidates: attribute queries


def test_attrnoun_query_weights_by_hand():
    ents = [ent("Q25851", "European rabbit", "species of mammal", aliases=["rabbit"], nt_qid="Q729",
                nt_label="animal", nt_description="multicellular organism"),
            ent("Q729", "animal", "multicellular organism")]
    q = frame([qry("q", "running rabbit", "wd-attrnoun-living", ["Q25851"], attribute="running",
                   natural_type="animal")])
    got = as_dict(build_text_candidates(frame(ents), None, q), "q")
    # h = 0.1. keep 1.0; synonym instead 0.2 (entity 0.18 over 2, parent 0.02 over 1);
    # "attr syn"/"syn attr" 0.2 (entity 0.18 over 4, parent 0.02 over 2);
    # swap: "rabbit" is the longest entity synonym in the query -> entity 0.18 over 2, parent 0.02 over 1;
    # attribute alone 0.2; definitions 0.05 (entity 0.045 over 2, parent 0.005 over 1). Max per string.
    expected = normalised({
        "running rabbit": 1.0,                     # keep (also pseudo 0.045, swap 0.09)
        "European rabbit": 0.09, "rabbit": 0.09, "animal": 0.02,
        "running European rabbit": 0.09,           # swap 0.09 > pseudo 0.045
        "European rabbit running": 0.045, "rabbit running": 0.045,
        "running animal": 0.02,                    # parent swap 0.02 > parent pseudo 0.01
        "animal running": 0.01,
        "running": 0.2,
        "species of mammal": 0.0225, "multicellular organism": 0.0225,  # entity def 0.0225 > parent 0.005
    })
    assert_weights(got, expected)


@pytest.mark.parametrize("qids", [[], ["Q10", "Q11"]])
def test_aggregated_attr_query_uses_natural_type_as_entity(qids):
    ents = [ent("Q10", "sparrow", "small bird", nt_qid="Q5113", nt_label="bird", nt_description="class of birds"),
            ent("Q11", "robin", "red-breasted bird", nt_qid="Q5113", nt_label="bird",
                nt_description="class of birds"),
            ent("Q5113", "bird", "class of birds", aliases=["Aves"])]
    q = frame([qry("q", "spotted bird", "wd-attr-world", qids, attribute="spotted", natural_type="bird")])
    got = as_dict(build_text_candidates(frame(ents), None, q, with_sources=True), "q")
    # natural type "bird" (Q5113, generic: h = 0.2) in the entity role, no parent lists:
    # synonyms bird/Aves share 0.2*0.8; pseudo (4 strings) 0.16; swap "bird" -> bird/Aves 0.16; attribute 0.2;
    # definition "class of birds" 0.05*0.8. No sparrow/robin text may appear.
    expected = normalised({"spotted bird": 1.0, "bird": 0.08, "Aves": 0.08, "bird spotted": 0.04,
                           "spotted Aves": 0.08, "Aves spotted": 0.04, "spotted": 0.2, "class of birds": 0.04})
    assert_weights(got, expected)


def test_attribute_filled_from_attributes_table_when_missing():
    ents = [ent("Q1", "apple", aliases=["apples"], nt_qid="Q2095", nt_label="food")]
    attrs = frame([dict(qid="Q1", category="Color", attribute="red", query="red apple", source="llm")])
    q = frame([qry("q", "red apple", "wd-attrnoun-world", ["Q1"], attribute=None, natural_type="food")])
    got = as_dict(build_text_candidates(frame(ents), attrs, q), "q")
    assert "red" in got and "apple red" in got
    got_none = as_dict(build_text_candidates(frame(ents), None, q), "q")
    assert "red" not in got_none and "apple red" not in got_none


def test_swap_matches_whole_words_only():
    assert tm.swap_template("giant red ant", ["ant"]) == ["giant red ", ""]
    assert tm.swap_template("giant", ["ant"]) is None
    assert tm.swap_template("Ant on an ant hill", ["ant"]) == ["", " on an ", " hill"]
    # longest first: "European rabbit" wins over "rabbit"
    assert tm.swap_template("a european rabbit", ["European rabbit", "rabbit"]) == ["a ", ""]
    ents = [ent("Q1", "ant", aliases=["emmet"], nt_qid="Q729", nt_label="animal")]
    q = frame([qry("q", "giant red ant", "wd-attrnoun-living", ["Q1"], attribute="giant red",
                   natural_type="animal")])
    got = as_dict(build_text_candidates(frame(ents), None, q), "q")
    assert "giant red emmet" in got
    assert not any("giemmet" in t for t in got)


def test_every_query_gets_candidates_and_bad_inputs_are_named():
    ents = frame([ent("Q1", "x")])
    q = frame([qry("a", "x", "wd-noun-world", ["Q1"]), qry("b", "lonely", "wd-noun-world", ["Q404"])])
    df = build_text_candidates(ents, None, q)
    assert as_dict(df, "b") == {"lonely": 1.0}
    with pytest.raises(ValueError, match="unknown query kind 'weird'"):
        build_text_candidates(ents, None, frame([qry("a", "x", "weird", ["Q1"])]))
    with pytest.raises(ValueError, match="duplicated query_id"):
        build_text_candidates(ents, None, frame([qry("a", "x", "wd-noun-world", []),
                                                    qry("a", "y", "wd-noun-world", [])]))
    with pytest.raises(ValueError, match=r"lacks columns \['natural_type'\]"):
        build_text_candidates(ents, None, q.drop(columns=["natural_type"]))
    with pytest.raises(ValueError, match="'Q1' more than once"):
        build_text_candidates(frame([ent("Q1", "x"), ent("Q1", "y")]), None, q)
    with pytest.raises(ValueError, match="hierarchy_chance_generic"):
        build_text_candidates(ents, None, q, hierarchy_chance_generic=1.5)


# ---------------------------------------------------------------------------------------------------------------
# sampler


def _toy_sampler(alt_text_chance, seed=0):
    cands = {"q1": (["a", "b", "c"], np.cumsum([0.5, 0.3, 0.2])), "q2": (["d", "e"], np.cumsum([0.9, 0.1]))}
    return ts.TextSampler(cands, alt_text_chance=alt_text_chance, seed=seed)


def test_sampler_shares_match_configured_weights_and_a_wrong_vector_fails():
    s = _toy_sampler(0.3)
    rng = np.random.default_rng(12345)
    n = 200_000
    counts, sources = Counter(), Counter()
    for _ in range(n):
        text, src = s.sample(["x", "y"], ["q1", "q2"], rng)
        counts[text] += 1
        sources[src] += 1
    right = {"x": 0.15, "y": 0.15, "a": 0.7 * 0.5 * 0.5, "b": 0.7 * 0.5 * 0.3, "c": 0.7 * 0.5 * 0.2,
             "d": 0.7 * 0.5 * 0.9, "e": 0.7 * 0.5 * 0.1}
    assert shares_match(counts, right, n)
    assert shares_match(sources, {"alt": 0.3, "kg": 0.7}, n)
    # the same check must reject plausible mistakes
    swapped = dict(right, b=right["c"], c=right["b"])                      # two weights exchanged
    shifted = dict(right, d=right["d"] - 0.01, e=right["e"] + 0.01)       # one point of mass moved
    query_weighted = {**right, **{k: 0.7 * 0.6 * v for k, v in (("a", .5), ("b", .3), ("c", .2))},
                      **{k: 0.7 * 0.4 * v for k, v in (("d", .9), ("e", .1))}}  # queries not uniform
    no_alt_roll = {k: (0.5 * v / 0.7 if k not in "xy" else 0.0) for k, v in right.items()}
    for wrong in (swapped, shifted, query_weighted, no_alt_roll):
        assert not shares_match(counts, wrong, n)
    assert not shares_match(sources, {"alt": 0.5, "kg": 0.5}, n)


def test_end_to_end_build_save_load_sample(tmp_path):
    q = frame([qry("q1", "european rabbit", "wd-noun-living", ["Q25851"], natural_type="animal")])
    df = build_text_candidates(frame(RABBIT_ENTITIES), None, q)
    path = tmp_path / "text_candidates.parquet"
    ts.save_candidates(df, path)
    assert sorted(os.listdir(tmp_path)) == ["text_candidates.parquet"]  # no temp file left
    s = ts.load_sampler(path, alt_text_chance=0.5, seed=0)
    assert len(s) == 1 and "q1" in s
    stored = dict(s.candidates("q1"))
    assert_weights(stored, rabbit_noun_expected())
    rng = np.random.default_rng(7)
    n = 200_000
    counts = Counter(s.sample_kg("q1", rng) for _ in range(n))
    assert shares_match(counts, rabbit_noun_expected(), n)


def test_alt_text_chance_zero_never_picks_alt():
    s = _toy_sampler(0.0)
    rng = np.random.default_rng(1)
    draws = [s.sample(["x", "y"], ["q1"], rng) for _ in range(5000)]
    assert {src for _, src in draws} == {"kg"}
    assert {t for t, _ in draws} == {"a", "b", "c"}


def test_alt_text_chance_one_always_alt_when_present_else_kg():
    s = _toy_sampler(1.0)
    rng = np.random.default_rng(2)
    draws = [s.sample(["x", "y"], ["q1", "q2"], rng) for _ in range(5000)]
    assert {src for _, src in draws} == {"alt"}
    assert {t for t, _ in draws} == {"x", "y"}
    for alts in ([], None, ["", "   "]):  # no (usable) alt text: KG text
        draws = [s.sample(alts, ["q2"], rng) for _ in range(2000)]
        assert {src for _, src in draws} == {"kg"}
        assert {t for t, _ in draws} == {"d", "e"}


def test_fallbacks_without_candidates():
    s = _toy_sampler(0.0)
    rng = np.random.default_rng(3)
    # no query has candidates: alt text even at chance 0, else the empty string
    assert s.sample(["only alt"], ["unknown"], rng) == ("only alt", "alt")
    assert s.sample([], ["unknown"], rng) == ("", "none")
    assert s.sample([], [], rng) == ("", "none")
    # unknown query ids are skipped, known ones used
    assert {s.sample([], ["unknown", "q2"], rng)[0] for _ in range(200)} <= {"d", "e"}


def test_sample_for_json_reads_shard_json():
    s = _toy_sampler(1.0)
    rng = np.random.default_rng(4)
    meta = {"uid": "u", "url": "http://x", "query_ids": ["q1"], "alt_texts": ["an alt"], "qids": [],
            "is_living": False, "licence": None}
    assert s.sample_for_json(meta, rng) == ("an alt", "alt")
    assert s.sample_for_json(json.dumps(dict(meta, alt_texts=[])), rng)[1] == "kg"
    assert s.sample_for_json({"query_ids": ["q2"]}, rng)[0] in {"d", "e"}


def test_sampler_pickles_and_accepts_python_random():
    s = _toy_sampler(0.5, seed=9)
    s2 = pickle.loads(pickle.dumps(s))
    a = [s.sample(["x"], ["q1", "q2"], np.random.default_rng(5)) for _ in range(50)]
    b = [s2.sample(["x"], ["q1", "q2"], np.random.default_rng(5)) for _ in range(50)]
    assert a == b
    r1, r2 = random.Random(11), random.Random(11)
    assert [s.sample(["x"], ["q1"], r1) for _ in range(50)] == [s2.sample(["x"], ["q1"], r2) for _ in range(50)]
    # own generator: seeded, and reseed() separates workers
    t1 = [_toy_sampler(0.5, seed=3).sample(["x"], ["q1"])[0] for _ in range(1)]
    assert t1 == [_toy_sampler(0.5, seed=3).sample(["x"], ["q1"])[0]]
    w0, w1 = _toy_sampler(0.5, seed=3), _toy_sampler(0.5, seed=3)
    w0.reseed(0), w1.reseed(1)
    assert [w0.sample(["x", "y"], ["q1"]) for _ in range(40)] != [w1.sample(["x", "y"], ["q1"]) for _ in range(40)]
    # per-sample generator: same key and epoch, same draw
    assert s.sample(["x"], ["q1"], s.rng_for("k1", 2)) == s2.sample(["x"], ["q1"], s2.rng_for("k1", 2))


def test_dict_and_table_constructors_agree():
    df = pd.DataFrame({"query_id": ["q1", "q2", "q3"], "texts": [["a", "b", "c"], ["d", "é"], []],
                       "weights": [[2.0, 1.0, 1.0], [0.0, 3.0], []]})
    s1 = ts.TextSampler.from_frame(df, 0.5)
    s2 = ts.TextSampler({q: (t, np.cumsum(w)) for q, t, w in zip(df.query_id, df.texts, df.weights)}, 0.5)
    assert len(s1) == len(s2) == 2 and "q3" not in s1
    for q in ("q1", "q2"):
        c1, c2 = s1.candidates(q), s2.candidates(q)
        assert [t for t, _ in c1] == [t for t, _ in c2]
        assert np.allclose([p for _, p in c1], [p for _, p in c2])
    assert np.allclose([p for _, p in s1.candidates("q1")], [0.5, 0.25, 0.25])
    rng = np.random.default_rng(0)
    assert {s1.sample_kg("q2", rng) for _ in range(500)} == {"é"}  # zero weight never drawn


def test_invalid_inputs_raise(tmp_path):
    with pytest.raises(ValueError, match="alt_text_chance"):
        _toy_sampler(1.5)
    with pytest.raises(ValueError, match="'q1'"):
        ts.TextSampler({"q1": (["a", "b"], [0.6, 0.4])}, 0.5)  # not cumulative
    bad = pd.DataFrame({"query_id": ["q1"], "texts": [["a", "b"]], "weights": [[1.0]]})
    path = tmp_path / "c.parquet"
    with pytest.raises(ValueError, match="'q1'"):
        ts.save_candidates(bad, path)
    assert not path.exists() and os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="negative"):
        ts.save_candidates(pd.DataFrame({"query_id": ["q"], "texts": [["a"]], "weights": [[-1.0]]}), path)


# ---------------------------------------------------------------------------------------------------------------
# performance smoke


def synthetic(n_entities: int, n_queries: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    types = ["Q729", "Q756", "Q11460", "Q42889"]
    rows = [ent(t, f"type {t}", f"description of {t}", aliases=[f"alias of {t}"]) for t in types]
    for i in range(n_entities):
        t = types[i % 4]
        rows.append(ent(f"Q{10_000_000 + i}", f"thing {i}", f"thing number {i}",
                        aliases=[f"alias {i} {k}" for k in range(int(rng.integers(0, 5)))],
                        common_names=[f"common {i}"] if i % 3 == 0 else [],
                        taxon_names=[f"Taxon {i}"] if i % 5 == 0 else [],
                        nt_qid=t, nt_label=f"type {t}", nt_description=f"description of {t}"))
    qs = []
    for j in range(n_queries):
        i = int(rng.integers(n_entities))
        t = types[i % 4]
        e = f"Q{10_000_000 + i}"
        if j % 3 == 0:
            qs.append(qry(f"q{j}", f"thing {i}", "wd-noun-world", [e], natural_type=f"type {t}".lower()))
        elif j % 3 == 1:
            qs.append(qry(f"q{j}", f"red thing {i}", "wd-attrnoun-world", [e], "red", f"type {t}".lower()))
        else:
            qs.append(qry(f"q{j}", f"attr{j} type {t}".lower(), "wd-attr-world", [], f"attr{j}",
                          f"type {t}".lower()))
    return pd.DataFrame(rows), pd.DataFrame(qs)


def test_perf_smoke_50k_queries(tmp_path, capsys):
    ents, queries = synthetic(15_000, 50_000)
    t0, c0 = time.perf_counter(), time.process_time()
    df = build_text_candidates(ents, None, queries)
    t_build, cpu_build = time.perf_counter() - t0, time.process_time() - c0
    path = tmp_path / "c.parquet"
    t0 = time.perf_counter()
    ts.save_candidates(df, path)
    s = ts.load_sampler(path, 0.5, 0)
    t_io = time.perf_counter() - t0
    ids = queries["query_id"].tolist()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for k in range(20_000):
        s.sample(["alt"], [ids[k], ids[-k - 1]], rng)
    t_sample = (time.perf_counter() - t0) / 20_000
    n = df["texts"].map(len)
    with capsys.disabled():
        print(f"\n[text_mix perf] build {len(df)} queries: {t_build:.2f} s ({t_build / len(df) * 1e6:.1f} us/query,"
              f" {n.mean():.1f} texts/query); save+load {t_io:.2f} s; sample {t_sample * 1e6:.1f} us/draw")
    assert len(df) == 50_000 and (n >= 1).all()
    assert np.allclose(df["weights"].map(sum), 1.0)
    assert cpu_build < 60.0  # CPU time, not wall (a loaded machine slows the wall clock); measured ~1.5 s


# ---------------------------------------------------------------------------------------------------------------
# KG texts from living queries only (datasets.<name>.kg_text_queries)


def _living_and_world_queries():
    ents = [ent("Q1", "European rabbit", aliases=["rabbit"], nt_qid="Q729", nt_label="animal"),
            ent("Q2", "rabbit hutch", aliases=["hutch"], nt_qid="Q3", nt_label="building")]
    living = {**qry("qL", "European rabbit", "wd-noun-living", ["Q1"], natural_type="animal"), "is_living": True}
    world = {**qry("qW", "rabbit hutch", "wd-noun-world", ["Q2"], natural_type="building"), "is_living": False}
    return frame(ents), frame([living, world])


def test_living_kg_text_queries_never_draw_a_world_query_text():
    ents, queries = _living_and_world_queries()
    world_texts = {"rabbit hutch", "hutch", "building"}
    sample = {"alt_texts": [], "query_ids": ["qW", "qL"]}  # an image found by a world and a living query
    drawn = {}
    for mode in ("all", "living"):
        df = build_text_candidates(ents, None, queries, kg_text_queries=mode, with_sources=True)
        sampler = ts.TextSampler.from_frame(df, alt_text_chance=0.0, seed=0)
        drawn[mode] = Counter(sampler.sample_for_json(sample)[0] for _ in range(400))
    assert not world_texts & set(drawn["living"]), drawn["living"]
    assert set(drawn["living"]) <= {"European rabbit", "rabbit", "animal"}
    # an "all" dataset draws from both queries (each about half the time: P(no world text in 400) ~ 2^-400)
    n_world = sum(c for t, c in drawn["all"].items() if t in world_texts)
    assert 120 < n_world < 280, drawn["all"]


def test_living_kg_text_queries_keeps_only_living_rows_and_needs_the_column():
    ents, queries = _living_and_world_queries()
    assert build_text_candidates(ents, None, queries, kg_text_queries="living")["query_id"].tolist() == ["qL"]
    assert build_text_candidates(ents, None, queries, kg_text_queries="all")["query_id"].tolist() == ["qL", "qW"]
    with pytest.raises(ValueError, match="is_living"):
        build_text_candidates(ents, None, queries.drop(columns=["is_living"]), kg_text_queries="living")
    with pytest.raises(ValueError, match="kg_text_queries"):
        build_text_candidates(ents, None, queries, kg_text_queries="world")


def _text_candidates_params(tmp_path, extra_config: str | None) -> dict:
    """The text_candidates rule's guard and kg_text_queries params per dataset, from the parsed workflow."""
    from workflow_helpers import in_loaded_workflow

    configfiles = []
    if extra_config is not None:
        (tmp_path / "extra.yaml").write_text(extra_config)
        configfiles.append(str(tmp_path / "extra.yaml"))
    return in_loaded_workflow(
        " p = w.get_rule('text_candidates').params\n"
        " print(json.dumps({'guard': p.weights['guard'], 'kg': {d: p.kg_text_queries(types.SimpleNamespace("
        "dataset=d)) for d in ('entitynet', 'livingthings', 'demo')}}))", tuple(configfiles))


def test_workflow_passes_the_guard_switch_and_living_kg_texts_for_livingthings(tmp_path):
    shipped = _text_candidates_params(tmp_path, None)
    assert shipped == {"guard": False, "kg": {"entitynet": "all", "livingthings": "living", "demo": "all"}}
    on = _text_candidates_params(tmp_path, "text_mix: {hierarchy_chance_generic: 0.2, hierarchy_chance_living: 0.1,"
                                           " synonym_guard: true}\n")
    assert on["guard"] is True
