"""WordNet living things (rule ``kg_wordnet``): the paper's ``wordnet-noun-living`` entities, read offline.

Reads the local WordNet 3.0 database directory ``params.wordnet_dir`` (``datasets.<name>.wordnet.dir``) and writes
one entities-schema row per leaf synset under ``living_thing.n.01`` minus the authors' blacklist
(``params.max_synsets``: an evenly spaced subset, for small demos). The selection and the reader are in
:mod:`lib.kg.wordnet`.
"""

import logging

from _helpers import configure_logging, rule_entry, write_parquet
from lib.kg.wordnet import wordnet_entities, wordnet_reader

log = logging.getLogger("entitynet.kg_wordnet")


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    if not p.wordnet_dir:
        raise ValueError(f"{snakemake.output.entities}: datasets.{snakemake.wildcards.dataset}.wordnet.dir is null; "
                         "set it to a WordNet 3.0 database directory (e.g. /usr/share/wordnet) to build WordNet rows")
    with wordnet_reader(p.wordnet_dir) as wn:
        df, stats = wordnet_entities(wn, p.max_synsets)
    log.info("WordNet living things: %s; %d rows written", stats, len(df))
    write_parquet(df, snakemake.output.entities)


if __name__ == "__main__":
    rule_entry(main, globals())
