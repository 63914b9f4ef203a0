"""WordNet living things on the real WordNet 3.0 database (Debian's wordnet-base, /usr/share/wordnet).

.ci/run installs wordnet-base; elsewhere the database tests are skipped with the reason below.
"""
from pathlib import Path

import pandas as pd
import pytest

from lib.kg import wordnet as kw
from lib.kg.kg_entity_table import ENTITY_COLUMNS, add_wordnet

WN_DIR = Path("/usr/share/wordnet")
needs_wordnet = pytest.mark.skipif(not (WN_DIR / "data.noun").is_file(),
                                   reason="no WordNet 3.0 database at /usr/share/wordnet "
                                          "(apt-get install wordnet-base; .ci/run does)")


@pytest.fixture(scope="module")
def wordnet():
    with kw.wordnet_reader(WN_DIR) as wn:
        df, stats = kw.wordnet_entities(wn)
        leaves, _ = kw.living_leaves(wn)
        yield wn, df, stats, leaves


@needs_wordnet
def test_counts_match_the_authors(wordnet):
    _, df, stats, _ = wordnet
    # the authors' single-parent tree (subtree without the thoroughbred instances) has 8,861 synsets
    assert stats["subtree_kept"] == 8861
    assert stats["dropped_instances"] == 11
    assert stats["leaves"] == len(df) == 6983
    assert stats["lemmas"] == 16704
    assert df["qid"].is_unique and df["qid"].str.startswith("wordnet:").all()


@needs_wordnet
def test_blacklist_thoroughbreds_and_internal_nodes_are_gone(wordnet):
    wn, df, _, leaves = wordnet
    qids = set(df["qid"])
    for name in ("donald_duck.n.01", "mickey_mouse.n.01", "easter_bunny.n.01", "yggdrasil.n.01", "person.n.01",
                 "microorganism.n.01", "cell.n.02", "wildlife.n.01"):
        assert f"wordnet:{name}" not in qids
    thoroughbred = wn.synset("thoroughbred.n.02")
    named_horses = {f"wordnet:{s.name()}" for s in thoroughbred.instance_hyponyms()}
    assert named_horses and not (named_horses & qids)
    # nothing below a blacklisted synset either (e.g. every person), and no synset with hyponyms
    assert "wordnet:mother.n.01" not in qids
    assert all(not (s.hyponyms() or s.instance_hyponyms()) for s in leaves)
    for name in ("aardvark.n.01", "aalii.n.01", "european_rabbit.n.01"):
        assert f"wordnet:{name}" in qids


@needs_wordnet
def test_rows_lemmas_casing_and_natural_types(wordnet):
    _, df, _, _ = wordnet
    ents = df.set_index("qid")
    rabbit = ents.loc["wordnet:european_rabbit.n.01"]
    assert rabbit["label"] == "European rabbit" and "Old World rabbit" in rabbit["aliases"]
    assert rabbit["natural_type_qid"] == "wordnet:animal.n.01" and rabbit["natural_type_label"] == "animal"
    assert ents.loc["wordnet:aalii.n.01", "natural_type_qid"] == "wordnet:plant.n.02"
    assert ents.loc["wordnet:aalii.n.01", "description"].startswith("a small Hawaiian tree")
    assert (ents["natural_type_qid"] == "wordnet:fungus.n.01").sum() > 100  # fungi come in through WordNet
    # mixed-case duplicates share the first casing seen: 'balm of Gilead' is never a second spelling
    names = [n for row in df.itertuples() for n in [row.label, *row.aliases]]
    lowered = pd.Series(names).str.lower()
    spellings = pd.Series(names).groupby(lowered).nunique()
    assert spellings.max() == 1
    assert ents["is_living"].all() and (ents["source"] == "wordnet").all()
    assert set(df.columns) == set(ENTITY_COLUMNS)


@needs_wordnet
def test_max_synsets_and_merge_into_entities(wordnet):
    wn, _, _, _ = wordnet
    small, _ = kw.wordnet_entities(wn, max_synsets=50)
    assert len(small) == 50 and small["qid"].is_unique
    assert small["label"].str.lower().str[0].nunique() > 5  # spread over the alphabet, not the first 50
    wd = pd.DataFrame([{c: None for c in ENTITY_COLUMNS} | {"qid": "Q1", "label": "x", "aliases": [],
                                                                "roots": ["Q1"], "is_living": False,
                                                                "source": "wikidata", "sitelinks": 3}])
    merged = add_wordnet(wd, small)
    assert len(merged) == 51 and merged["sitelinks"].dtype == "Int64"
    with pytest.raises(ValueError, match="appears twice"):
        add_wordnet(merged, small)


def test_missing_or_wrong_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base"):
        kw.check_wordnet_dir(tmp_path / "nope")
    (tmp_path / "data.noun").write_text("")
    with pytest.raises(FileNotFoundError, match="lacks index.noun"):
        kw.check_wordnet_dir(tmp_path)
