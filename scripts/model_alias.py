"""eval.csv of a model name that is another name of a trained model (rule ``model_alias``).

``<recipe>-alt<N>`` with N % equal to the recipe's own ``alt_text_chance`` (``tiny-alt50`` for ``tiny``) is the same
training run (``workflow_config.model_aliases``). Its eval.csv is the recipe's, byte for byte: the ``model`` column
names the run that was trained.
"""

import logging
import shutil

from _helpers import atomic_path, configure_logging, rule_entry

log = logging.getLogger("entitynet.model_alias")


def main(snakemake) -> None:
    configure_logging(snakemake)
    with atomic_path(snakemake.output.eval_csv) as tmp:
        shutil.copyfile(snakemake.input.eval_csv, tmp)
    log.info("%s is %s (the same training run)", snakemake.output.eval_csv, snakemake.input.eval_csv)


if __name__ == "__main__":
    rule_entry(main, globals())
