"""Rule ``build_queries``: the dataset's search queries (``queries.parquet``) from its entities and attributes.

Builds the queries of the configured kinds (capped per kind, sampled with the seed), with the per-engine search
terms of ``queries.world_search_terms``, by ``lib.search.query_builder`` (whose docstring documents the kinds, the
``query_id`` and the search terms), and writes them.
"""

import logging

import pandas as pd

from _helpers import configure_logging, rule_entry, write_parquet
from lib.search.query_builder import build_queries

log = logging.getLogger("entitynet.build_queries")


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    entities = pd.read_parquet(snakemake.input.entities)
    attributes = pd.read_parquet(snakemake.input.attributes)
    q = build_queries(entities, attributes, list(p.kinds), dict(p.max_per_kind or {}), int(p.seed),
                      str(p.world_search_terms))
    log.info("%d queries: %s", len(q), q["kind"].value_counts().to_dict())
    write_parquet(q, snakemake.output.queries)


if __name__ == "__main__":
    rule_entry(main, globals())
