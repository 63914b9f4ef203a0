"""Prepare one evaluation benchmark root by target name (rule ``prepare_benchmark``).

Builds ``data/benchmarks/{benchmark}/`` (the layout clip_benchmark reads, plus ``manifest.json``) from
``benchmarks.<name>.source`` (a Hub repository, the CUB-200-2011 / iNaturalist 2021 / Crossmodal-3600 archives, the
Rare Species repository, or a local folder or archive), counts checked against ``benchmarks.<name>.expected``; a
failed preparation leaves no root. The sources and their checks: ``lib.eval.benchmark_roots`` and docs/BENCHMARKS.md.
"""

import logging

from _helpers import configure_logging, rule_entry
from lib.eval.benchmark_roots import PrepareError, prepare

log = logging.getLogger("entitynet.prepare_benchmark")


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    try:
        prepare(snakemake.wildcards.benchmark, dict(p.bench), snakemake.output.root, p.cache)
    except PrepareError as e:
        log.error("%s", e)  # the reason in the job's log too, not only on Snakemake's stderr
        raise


if __name__ == "__main__":
    rule_entry(main, globals())
