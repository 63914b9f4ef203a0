"""Write the final training/validation shards from the downloaded chunks (rule ``build_shards``): every downloaded
sample joined with its (deduplicated) ``urls.parquet`` row, minus the ``drop`` table and outside the optional
``subset``, rewritten as webdataset shards with a seeded validation split; also ``sizes.json`` per split, the shard
index, the download status table and a summary. How is documented in ``lib.data.training_shards``.
"""

import pandas as pd

from _helpers import configure_logging, rule_entry, write_json, write_parquet
from lib.data.training_shards import build_shards, download_counts, status_table


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    urls = pd.read_parquet(snakemake.input.urls)
    queries = pd.read_parquet(snakemake.input.queries)
    drop = None
    if snakemake.input.get("drop"):
        drop = set(pd.read_parquet(snakemake.input.drop, columns=["uid"])["uid"].dropna().astype(str))
    chunk_dirs = list(snakemake.input.chunks)
    summary, index = build_shards(chunk_dirs, urls, queries, snakemake.output.shards_dir, int(p.val_size),
                                  int(p.samples_per_shard), int(p.seed), drop, p.subset)
    status = status_table(chunk_dirs)
    summary["download"] = download_counts(status)
    write_parquet(status, snakemake.output.status)
    if "index" in snakemake.output.keys():
        write_parquet(index, snakemake.output.index)
    write_json(summary, snakemake.output.summary)


if __name__ == "__main__":
    rule_entry(main, globals())
