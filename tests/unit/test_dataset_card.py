"""scripts/lib/data/dataset_card.py: the card's numbers (columnar counting) and its Markdown."""
import pandas as pd
import pytest

from lib.data import dataset_card as dc

INDEX = pd.DataFrame({"uid": ["a", "b", "c", "d"], "split": ["train", "train", "train", "val"],
                      "shard": ["00000.tar"] * 3 + ["00000.tar"]})
URLS = pd.DataFrame({
    "uid": ["a", "b", "c", "d", "not-written"],
    "query_ids": [["q1", "q2"], ["q3"], ["q4"], ["q1", "q1x"], ["q1"]],
    "alt_texts": [["x", "y"], [], ["z"], ["w"], ["v"]],
    "qids": [["Q10", "Q20"], [], ["Q30"], ["Q10"], ["Q10"]],
    "licence": ["CC0", None, "", "CC BY 4.0", "CC0"]})
QUERIES = pd.DataFrame({"query_id": ["q1", "q2", "q3", "q4"],
                        "kind": ["wd-noun-living", "wd-attrnoun-living", "wd-attr-world", "wd-noun-world"]})
ENTITIES = pd.DataFrame({"qid": ["Q10", "Q20", "Q30", "Q729"], "label": ["lion", "oak", "chair", "animal"],
                         "roots": [["Q729"], ["Q756"], ["Q14745", "Q2424752"], ["Q729"]]})
STATUS = pd.DataFrame({"status": ["success", "success", "failed_to_download"], "reason": ["success"] * 2 + ["HTTP 404"],
                       "retried": [False, True, True], "count": [3, 1, 2]})


def stats(**kw):
    return dc.card_stats(INDEX, URLS, QUERIES, ENTITIES, STATUS, {"n_images": 5, "eval_sets_missing": ["inat"],
                                                                     "eval_sets_skipped": ["imagenet1k"]},
                         {"n_train": 3, "n_val": 1, "skipped": {"dropped": 1}}, **kw)


def test_counts_per_root_kind_entity_text_and_licence():
    s = stats(roots=["Q729", "Q756", "Q42889"])
    assert s["images"] == 4 and s["splits"] == {
        "train": {"images": 3, "with_alt_text": 2, "without_alt_text": 1},
        "val": {"images": 1, "with_alt_text": 1, "without_alt_text": 0}}
    roots = {r["key"]: r["images"] for r in s["root_classes"]}
    # a (lion+oak) counts once under each root; Q729 twice (a, d) not three times; b has no entity
    assert roots == {"Q729": 2, "Q756": 1, "Q14745": 1, "Q2424752": 1, "Q42889": 0, dc.NO_ENTITY: 1}
    assert {r["key"]: r["label"] for r in s["root_classes"]}["Q729"] == "animal"
    kinds = {r["key"]: r["images"] for r in s["query_kinds"]}
    assert kinds == {"wd-noun-living": 2, "wd-attrnoun-living": 1, "wd-attr-world": 1, "wd-noun-world": 1, "?": 1}
    assert s["top_entities"][0] == {"key": "Q10", "label": "lion", "images": 2} and s["n_entities"] == 3
    assert s["texts_per_image"]["alt_texts_hist"] == {"0": 1, "1": 2, "2": 1}
    assert s["texts_per_image"]["queries_mean"] == pytest.approx(6 / 4)
    assert {r["key"]: r["images"] for r in s["licences"]} == {"CC0": 1, "unknown": 2, "CC BY 4.0": 1}
    assert s["download"]["by_outcome"] == {"success": 3, "HTTP 404": 2, "success (retry URL)": 1}
    assert s["download"]["rows"] == 6 and s["download"]["retried"] == 3 and s["download"]["recovered_by_retry"] == 1


def test_a_written_sample_without_a_urls_row_is_an_error():
    with pytest.raises(ValueError, match="no urls row"):
        dc.card_stats(pd.concat([INDEX, pd.DataFrame({"uid": ["zz"], "split": ["train"], "shard": ["x"]})]), URLS,
                      QUERIES, ENTITIES, STATUS, {}, {})


def test_markdown_has_every_section_and_plot():
    md = dc.render_markdown(stats(), "demo", "a description", source="entitynet", subset="living")
    for heading in ("## Summary", "## Download outcome", "## Dedup and decontamination", "## Images per root class",
                    "## Images per query kind", "## Texts per image", "## Top entities", "## Licences"):
        assert heading in md
    for p in dc.PLOTS:
        assert f"({p}.png)" in md
    assert "Built from the download of `entitynet`, subset `living`." in md
    assert "| inat | missing | not checked |" in md
    assert "| imagenet1k | skipped (evaluation.skip) | not checked |" in md  # deliberately skipped: on the card
    assert "| eval sets skipped (evaluation.skip) | imagenet1k |" in md
