"""Rule ``ablation_table``: the paper's ablation table from the runs' eval.csv files (lib.paper.tables).

input.eval and params.labels in the same order (one row label per run) -> output.csv / output.md / output.tex.
"""

import logging

from _helpers import configure_logging, rule_entry
from lib.paper.eval_scores import read_eval_csv
from lib.paper.tables import ablation_table, write_table

log = logging.getLogger("entitynet.ablation_table")


def main(snakemake) -> None:
    configure_logging(snakemake)
    paths = [str(p) for p in snakemake.input.eval]
    labels = [str(label) for label in snakemake.params.labels]
    if len(paths) != len(labels):
        raise ValueError(f"ablation table: {len(paths)} eval.csv inputs but {len(labels)} params.labels")
    if len(set(labels)) != len(labels):
        raise ValueError(f"ablation table: params.labels are not unique: {labels}")
    table = ablation_table({label: read_eval_csv(path) for label, path in zip(labels, paths)})
    write_table(table, snakemake.output.csv, snakemake.output.md, snakemake.output.tex)
    log.info("%s: %d run(s), columns %s", snakemake.output.csv, len(table), list(table.columns))


if __name__ == "__main__":
    rule_entry(main, globals())
