"""The entities of a dataset's KG as a plain table (rule ``kg_catalog``): ``results/{dataset}/kg_catalog.tsv``.

One row per Wikidata entity that the dataset's roots select from its frozen dump (``entities.parquet``; WordNet rows
left out), sorted by root, then label: ``qid``, ``label``, ``roots`` (the root QIDs it lies under, comma-separated),
``root_labels`` (their labels where the dump has them), ``living`` (1 for a living-things entity) and
``natural_type`` (its natural-type label). For the demo this lists what the bundled extract holds, the place to look
before adding a root (``extra_roots``) or a photo.
"""

import logging

import pandas as pd

from _helpers import atomic_path, configure_logging, rule_entry

log = logging.getLogger("entitynet.kg_catalog")

COLUMNS = ["qid", "label", "roots", "root_labels", "living", "natural_type"]


def catalog(entities: pd.DataFrame, root_labels: dict[str, str] | None = None) -> pd.DataFrame:
    """The catalog rows of an entities table (``docs/CONTRACTS.md``); ``root_labels``: ``{qid: label}`` of roots that
    are not themselves entities (the table's own labels are used first)."""
    ents = entities[entities.get("source", pd.Series("wikidata", index=entities.index)) != "wordnet"]
    labels = dict(root_labels or {})
    labels.update(dict(zip(entities["qid"], entities["label"])))
    roots = ents["roots"].map(lambda r: [str(q) for q in r] if r is not None else [])
    out = pd.DataFrame({
        "qid": ents["qid"].astype(str).values,
        "label": ents["label"].fillna("").astype(str).values,
        "roots": roots.map(",".join).values,
        "root_labels": roots.map(lambda r: ",".join(labels.get(q, "") or q for q in r)).values,
        "living": ents["is_living"].fillna(False).astype(bool).astype(int).values,
        "natural_type": ents["natural_type_label"].fillna("").astype(str).values,
    })
    clean = {c: out[c].str.replace(r"[\t\r\n]+", " ", regex=True) for c in ("label", "root_labels", "natural_type")}
    out = out.assign(**clean)
    return out.sort_values(["roots", "label", "qid"], kind="stable").reset_index(drop=True)[COLUMNS]


def main(snakemake) -> None:
    configure_logging(snakemake)
    ents = pd.read_parquet(snakemake.input.entities)
    out = catalog(ents)
    with atomic_path(snakemake.output.catalog) as tmp:
        out.to_csv(tmp, sep="\t", index=False)
    log.info("%d entities under %d root(s) -> %s", len(out), out["roots"].str.split(",").explode().nunique(),
             snakemake.output.catalog)


if __name__ == "__main__":
    rule_entry(main, globals())
