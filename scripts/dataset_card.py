"""Rule ``dataset_card``: the dataset card of a built dataset, ``card.md``, ``card.json`` and PNG plots.

Reads the dataset's shard index and summary, its deduplicated ``urls.parquet``, the download status table, the
dedup ``counts.json``, ``queries.parquet`` and ``entities.parquet``; counts and draws with ``lib.data.dataset_card``
(whose docstring lists the card's sections and plots) and writes every output of the rule.
"""

import json
import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from _helpers import configure_logging, rule_entry
from lib.data.dataset_card import card_stats, write_card

log = logging.getLogger("entitynet.dataset_card")

URL_COLUMNS = ("uid", "query_ids", "alt_texts", "qids", "licence")


def main(snakemake) -> None:
    configure_logging(snakemake)
    i, p = snakemake.input, snakemake.params
    stats = card_stats(pq.read_table(i.index, columns=["uid", "split"]),
                       pq.read_table(i.urls, columns=[c for c in URL_COLUMNS if c in pq.read_schema(i.urls).names]),
                       pq.read_table(i.queries, columns=["query_id", "kind"]),
                       pq.read_table(i.entities, columns=["qid", "label", "roots"]), pd.read_parquet(i.status),
                       json.loads(Path(i.dedup_counts).read_text()), json.loads(Path(i.summary).read_text()),
                       roots=list(p.roots or []))
    out = {k: str(v) for k, v in snakemake.output.items()}
    write_card(stats, out, str(p.dataset), str(p.description or ""), p.source, p.subset)
    log.info("card: %d images, download success %.1f %%", stats["images"], 100 * stats["download"]["success_rate"])


if __name__ == "__main__":
    rule_entry(main, globals())
