# EntityNet: Wikidata -> entities -> queries -> image search -> img2dataset -> shards -> open_clip -> clip_benchmark.
# Default target: the embedded offline demo (results/demo/tiny/...). See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# rules/common.smk validates the config against config/schema.yaml (short messages with the key path and a
# "did you mean") and cross-checks it, before any job.
include: "rules/common.smk"
include: "rules/kg.smk"
include: "rules/queries.smk"
include: "rules/search.smk"
include: "rules/download.smk"
include: "rules/dataset.smk"
include: "rules/train.smk"
include: "rules/benchmarks.smk"
include: "rules/evaluate.smk"
include: "rules/paper.smk"
include: "rules/report.smk"


# The default target (default_target.dataset / .model: the demo): its eval.csv, eval table and dataset card, and
# their report pages.
_d, _m = config["default_target"]["dataset"], config["default_target"]["model"]
DEFAULT_TARGETS = expand(
    [rules.evaluate.output.eval_csv, rules.model_report.output.table, rules.dataset_card.output.card],
    dataset=_d,
    model=_m,
)
DEFAULT_REPORT_TARGETS = expand([rules.dataset_overview.output[0], rules.card_html.output[0],
                                 rules.eval_table_html.output[0]], dataset=_d, model=_m)


# Console: quiet by default (progress, warnings, a closing summary); `--config console=verbose` or `--verbose`
# prints everything. Detail goes to the rule logs and .snakemake/log (scripts/lib/common/run_console.py).
from lib.common import run_console as _console

CONSOLE = _console.setup(config, workflow)


onsuccess:
    # the last thing a run prints: where the results are, with the headline numbers
    _outputs = _console.run_outputs(workflow.dag, DEFAULT_TARGETS + DEFAULT_REPORT_TARGETS)
    _console.print_summary(_console.summary_lines(*_outputs, logfiles=log))


rule all:
    default_target: True
    input:
        DEFAULT_TARGETS,
        DEFAULT_REPORT_TARGETS,
