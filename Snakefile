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


rule all:
    default_target: True
    input:
        DEFAULT_TARGETS,
