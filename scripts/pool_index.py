"""Build the SQLite FTS5 index of a search pool (rule ``pool_index``); see ``search_pool.py``."""

import logging

from _helpers import configure_logging, rule_entry
from lib.search.search_pool import build_index

log = logging.getLogger("entitynet.pool_index")


def main(snakemake) -> None:
    configure_logging(snakemake)
    n = build_index(snakemake.input.pool, snakemake.output.index)
    log.info("indexed %d pool rows from %s", n, snakemake.input.pool)


if __name__ == "__main__":
    rule_entry(main, globals())
