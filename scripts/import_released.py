"""Rebuild a dataset's tables from the authors' released EntityNet files instead of running the search and KG stages:
rule ``import_released_metadata`` writes ``urls.parquet`` and ``queries.parquet`` from the released image metadata
and query table (``lib.search.released``), rule ``import_released_entities`` writes ``entities.parquet`` and
``attributes.parquet`` from the released entity and query tables (``lib.search.released_entities``). One entry
function per rule, chosen by the rule's name (:data:`ENTRIES`); the mapping is documented in the libraries and in
docs/CONTRACTS.md.
"""

from _helpers import configure_logging, rule_entry
from lib.search.released import import_released
from lib.search.released_entities import import_released_entities


def run_import_released_metadata(snakemake) -> None:
    """Rule ``import_released_metadata``: ``urls.parquet`` and ``queries.parquet`` from the released metadata."""
    import_released(list(snakemake.input.metadata), snakemake.input.author_queries, snakemake.output.urls,
                    snakemake.output.queries, int(snakemake.params.seed))


def run_import_released_entities(snakemake) -> None:
    """Rule ``import_released_entities``: ``entities.parquet`` and ``attributes.parquet`` from the released tables."""
    import_released_entities(snakemake.input.author_entities, snakemake.input.author_queries,
                             snakemake.output.entities, snakemake.output.attributes)


#: one entry function per rule this script serves, chosen by the rule's name
ENTRIES = {"import_released_metadata": run_import_released_metadata,
           "import_released_entities": run_import_released_entities}


def main(snakemake) -> None:
    configure_logging(snakemake)
    if snakemake.rule not in ENTRIES:
        raise ValueError(f"import_released.py: no entry for rule {snakemake.rule!r}; it serves {sorted(ENTRIES)}")
    ENTRIES[snakemake.rule](snakemake)


if __name__ == "__main__":
    rule_entry(main, globals())
