"""Rule ``merge_search``: the raw hit files of every backend -> ``urls.parquet``, one row per unique (normalised) image
URL, shuffled with the dataset's seed. The merge itself (partitioned, bounded memory) is ``lib.search.merge``;
output contract: ``docs/CONTRACTS.md`` (urls.parquet).
"""

from _helpers import configure_logging, rule_entry
from lib.search.merge import merge_files


def main(snakemake) -> None:
    configure_logging(snakemake)
    merge_files(list(snakemake.input.hits), snakemake.input.queries, snakemake.output.urls,
                int(snakemake.params.seed))


if __name__ == "__main__":
    rule_entry(main, globals())
