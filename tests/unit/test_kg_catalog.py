"""scripts/kg_catalog.py: the entities of a dataset's KG as a TSV (QID, label, roots)."""
import pandas as pd

import kg_catalog


def entities():
    return pd.DataFrame({
        "qid": ["Q144", "Q729", "Q39546", "Q25294", "wordnet:dog.n.01", "Q5"],
        "label": ["Dog", "Animal", "physical tool", "Hammer\twith tab", "dog", "Beagle"],
        "roots": [["Q729", "Q144"], ["Q729"], ["Q39546"], ["Q39546"], ["Q729"], ["Q729", "Q144"]],
        "is_living": [True, True, False, False, True, True],
        "natural_type_label": ["Animal", None, None, "physical tool", "animal", "Dog"],
        "source": ["wikidata", "wikidata", "wikidata", "wikidata", "wordnet", "wikidata"],
    })


def test_catalog_lists_wikidata_entities_by_root_with_root_labels():
    c = kg_catalog.catalog(entities(), root_labels={"Q756": "plant"})
    assert list(c.columns) == kg_catalog.COLUMNS
    assert "wordnet:dog.n.01" not in set(c["qid"])  # WordNet rows are not in the KG
    assert c["qid"].tolist() == ["Q25294", "Q39546", "Q729", "Q5", "Q144"]  # by roots, then label
    row = c.set_index("qid").loc["Q144"]
    assert row["roots"] == "Q729,Q144" and row["root_labels"] == "Animal,Dog" and row["living"] == 1
    assert c.set_index("qid").loc["Q25294", "label"] == "Hammer with tab"  # no tab breaks the TSV
    assert c.set_index("qid").loc["Q39546", "living"] == 0


def test_catalog_tsv_round_trips(tmp_path):
    c = kg_catalog.catalog(entities())
    c.to_csv(tmp_path / "c.tsv", sep="\t", index=False)
    back = pd.read_csv(tmp_path / "c.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert back["qid"].tolist() == c["qid"].tolist() and back.shape == c.shape
