"""Attributes without an LLM: phrases derived from the Wikidata properties the paper used as attribute hints.

The paper (PAPER.md §6) prompted LLMs with these hints; by default we use the hints themselves, grouped into the
paper's categories, each with a search query. **Deviation**: this is a deterministic KG derivation, not the
authors' LLM generation; it yields fewer, more literal attributes. Caps follow the paper: at most
``max_per_category`` per (entity, category), and for world entities at most ``max_queries_world`` in total after a
seeded shuffle that keeps ``ceil(cap / #(entity, category) pairs)`` per pair, then trims to the exact total.
"""

import logging
import math

import pandas as pd

import kg_queries as kq
from _helpers import configure_logging, write_parquet
from sparql_client import EmbeddedSparql, qid_of

log = logging.getLogger("entitynet.kg_attributes")

WDT = "http://www.wikidata.org/prop/direct/"
# property -> (category, query template); {a} = attribute phrase, {e} = entity label.
HINT_RULES: dict[str, tuple[str, str]] = {
    "P462": ("Color", "{a} {e}"),
    "P186": ("Pattern and texture", "{a} {e}"),
    "P2079": ("Pattern and texture", "{a} {e}"),
    "P527": ("Parts", "{e} {a}"),
    "P1535": ("Environment", "{e} used by {a}"),
    "P366": ("Environment", "{e} for {a}"),
    "P2283": ("Other", "{e} using {a}"),
    "P4733": ("Other", "{e} {a}"),
    "P1034": ("Other", "{e} eating {a}"),
    "P1552": ("Other", "{a} {e}"),
    "P1672": ("Other", "{e} {a}"),
    "P1056": ("Other", "{e} {a}"),
    "P3095": ("Other", "{e} {a}"),
}
JUNK = {"none", "not applicable", "n/a", "unknown"}


def attributes_from_hints(hints: pd.DataFrame, entities: pd.DataFrame, max_per_category: int) -> pd.DataFrame:
    """``hints``: columns ent (QID), p (property IRI or PID), vlabel. Returns the attributes table."""
    if hints.empty:
        return pd.DataFrame(columns=["qid", "category", "attribute", "query", "source"])
    h = hints.copy()
    h["pid"] = h["p"].str.replace(WDT, "", regex=False)
    h = h[h["pid"].isin(HINT_RULES) & h["ent"].isin(entities["qid"])]
    labels = entities.set_index("qid")["label"]
    h["label"] = h["ent"].map(labels)
    h["attribute"] = h["vlabel"].str.strip().str.lower()
    h = h[~h["attribute"].isin(JUNK) & (h["attribute"].str.len().between(1, 100))]
    h["category"] = h["pid"].map(lambda p: HINT_RULES[p][0])
    h["query"] = [HINT_RULES[p][1].format(a=a, e=str(e).lower()) for p, a, e in zip(h["pid"], h["attribute"], h["label"])]
    h = h.rename(columns={"ent": "qid"})
    # dedup case-insensitively by attribute or by query, per entity
    h = h.drop_duplicates(["qid", "attribute"]).drop_duplicates(["qid", "query"])
    h = h.groupby(["qid", "category"], sort=False).head(max_per_category)
    h["source"] = "kg"
    return h[["qid", "category", "attribute", "query", "source"]].reset_index(drop=True)


def cap_world(attrs: pd.DataFrame, is_living: pd.Series, max_queries_world: int | None, seed: int) -> pd.DataFrame:
    """Apply the paper's world cap (``--max_queries``): per-pair quota after a seeded shuffle, then exact trim."""
    if not max_queries_world or attrs.empty:
        return attrs
    living = attrs["qid"].map(is_living).fillna(False).astype(bool)
    world = attrs[~living].sample(frac=1.0, random_state=seed)
    if len(world) <= max_queries_world:
        return attrs
    pairs = world.groupby(["qid", "category"]).ngroups
    quota = math.ceil(max_queries_world / pairs)
    world = world.groupby(["qid", "category"], sort=False).head(quota).head(max_queries_world)
    log.info("world attribute cap: kept %d of %d", len(world), int((~living).sum()))
    return pd.concat([attrs[living], world]).sort_index().reset_index(drop=True)


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    entities = pd.read_parquet(snakemake.input.entities)
    store = EmbeddedSparql()
    store.load(snakemake.input.extract)
    rows = store.select(kq.hints_query(p.language))
    hints = pd.DataFrame({"ent": [qid_of(r["ent"]["value"]) for r in rows], "p": [r["p"]["value"] for r in rows],
                          "vlabel": [r["vlabel"]["value"] for r in rows]})
    attrs = attributes_from_hints(hints, entities, int(p.max_per_category))
    attrs = cap_world(attrs, entities.set_index("qid")["is_living"], p.max_queries_world, int(p.seed))
    log.info("%d attributes for %d entities", len(attrs), attrs["qid"].nunique())
    write_parquet(attrs, snakemake.output.attributes)


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821
