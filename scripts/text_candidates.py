"""Rule ``text_candidates``: the KG text candidates of every query, with their weights (the paper's text mix).

Reads ``entities.parquet``, ``queries.parquet`` (and ``attributes.parquet``), builds one row per query with its
candidate KG texts, their normalised weights and the list each weight came from (``lib.train.text_mix``, whose
docstring documents the mix), and writes ``text_candidates.parquet`` (``lib.train.text_sampler.save_candidates``),
which training samples from.
"""

import logging
import time

import pandas as pd

from _helpers import configure_logging, rule_entry
from lib.train.text_mix import TextMixConfig, build_text_candidates
from lib.train.text_sampler import save_candidates

log = logging.getLogger("entitynet.text_candidates")


def main(snakemake) -> None:
    """Rule ``text_candidates``: input ``entities``, ``queries`` (``attributes`` optional); output ``candidates``;
    params ``hierarchy_chance_generic``, ``hierarchy_chance_living``, ``weights`` (TextMixConfig fields) and
    ``kg_text_queries`` (``all`` or ``living``), all from the resolved config."""
    configure_logging(snakemake)
    p = snakemake.params
    entities = pd.read_parquet(snakemake.input.entities)
    queries = pd.read_parquet(snakemake.input.queries)
    attributes = pd.read_parquet(snakemake.input.attributes) if "attributes" in snakemake.input.keys() else None
    weights = dict(p.weights)
    kg_text_queries = str(p.kg_text_queries)
    t0 = time.perf_counter()
    df = build_text_candidates(entities, attributes, queries, float(p.hierarchy_chance_generic),
                               float(p.hierarchy_chance_living), config=TextMixConfig(**weights), with_sources=True,
                               kg_text_queries=kg_text_queries)
    n = df["texts"].map(len)
    log.info("text candidates (%s queries, synonym guard %s) for %d of %d queries in %.1f s: %.2f texts per query "
             "(max %d), %d in total", kg_text_queries, "on" if weights.get("guard") else "off", len(df),
             len(queries), time.perf_counter() - t0, n.mean() if len(df) else 0.0, n.max() if len(df) else 0,
             n.sum())
    save_candidates(df, snakemake.output.candidates)


if __name__ == "__main__":
    rule_entry(main, globals())
