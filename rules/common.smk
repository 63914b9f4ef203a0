# Config resolution, cross-checks and input helpers shared by every stage. Defaults: config/schema.yaml, filled by
# workflow_config (rules index the resolved config); the logic behind the helpers: scripts/lib/common/rule_inputs.py.
import datetime as _dt
import glob as _glob
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from lib.common import rule_inputs as ri  # noqa: E402
from lib.common import workflow_config as wc  # noqa: E402
from lib.common.artifact_columns import CARD_PLOTS  # noqa: E402  (the dataset card's plots)

try:
    wc.validate_config(config, Path(workflow.basedir) / "config" / "schema.yaml")  # and fills the defaults
    wc.check(config, Path(workflow.basedir))
except wc.ConfigError as _e:
    raise WorkflowError(f"Invalid configuration: {_e}")


onstart:
    # Checked before the first job of a real run (a dry run plans offline and needs neither): the API keys of the
    # web search backends about to run, and the data of the benchmarks the evaluate jobs will read.
    try:
        _jobs = list(workflow.dag.needrun_jobs())
        _suites = sorted({ds(j.wildcards.dataset)["eval_suite"] for j in _jobs if j.rule.name == "evaluate"}
                         | {config["evaluation"]["baseline_suite"] for j in _jobs if j.rule.name == "evaluate_baseline"})
        wc.check_benchmarks_present(config, _suites, ri.RULE_BUILT_EVAL_ROOTS | ri.prepared_eval_roots(config))
        wc.check_api_keys(config, [(j.wildcards.dataset, j.wildcards.backend) for j in _jobs if j.rule.name == "search"])
    except wc.ConfigError as _e:
        raise WorkflowError(f"Invalid configuration: {_e}")


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    model=r"[a-z][a-z0-9_]*(-alt\d{1,3})?",
    chunk=r"\d{5}",
    side=r"[1-9]\d*",
    backend=r"[a-z_]+",


_DS_CACHE = {}


def ds(dataset):
    """Resolved config of a dataset (clear error for an unknown name); cached: input functions call it per job."""
    if dataset not in _DS_CACHE:
        _DS_CACHE[dataset] = _resolved(wc.dataset_config, config, dataset)
    return _DS_CACHE[dataset]


def recipe(model, dataset=None):
    """Resolved recipe of a model as trained on a dataset (its model_overrides merged in); clear error if unknown."""
    return _resolved(wc.model_recipe, config, model, dataset)


def _resolved(fn, *args):
    try:
        return fn(*args)
    except wc.ConfigError as e:
        raise WorkflowError(str(e))


def living_roots_of(dataset):
    return ri.living_roots(ds(dataset))


def src(dataset):
    """Dataset whose KG/search/download a dataset reuses (itself unless subset_of)."""
    return wc.source_dataset(config, dataset)


def of(output, **wildcards):
    """A rule's output (rules.<name>.output.<key>) with its wildcards set: one input path."""
    return expand(output, **wildcards)[0]


def train_shards_dir(wildcards):
    """Shards the train job reads: those of build_shards, or of resize_shards when the recipe sets stored_short_side."""
    side = recipe(wildcards.model, wildcards.dataset)["stored_short_side"]
    if side is None:
        return of(rules.build_shards.output.shards_dir, dataset=wildcards.dataset)
    return of(rules.resize_shards.output.shards_dir, dataset=wildcards.dataset, side=int(side))


def search_hits(wildcards):
    d = ds(wildcards.dataset)
    return expand(rules.search.output.hits, dataset=wildcards.dataset, backend=sorted(d["search"]["backends"]),
                  chunk=ri.chunk_ids(d["search"]["n_chunks"]))


def download_chunks(wildcards):
    s = src(wildcards.dataset)
    return expand(rules.download.output.chunk_dir, dataset=s, chunk=ri.chunk_ids(ds(s)["download"]["n_chunks"]))


def benchmark_inputs(names):
    """Rule-built roots of the named benchmarks; a benchmark neither on disk nor preparable stops the run here."""
    try:
        return ri.benchmark_inputs(config, names)
    except wc.ConfigError as e:
        raise WorkflowError(f"Benchmark data cannot be prepared: {e}")


def eval_inputs(wildcards):
    """The benchmark roots of the dataset's suite that rules build become inputs of its evaluate job."""
    return benchmark_inputs(list(wc.suite(config, wildcards.dataset)))


def baseline_eval_inputs(wildcards):
    return benchmark_inputs(list(wc.suite_by_name(config, config["evaluation"]["baseline_suite"])))


def dedup_eval_inputs(wildcards):
    """Rule-built roots of the eval sets: inputs, so adding or re-preparing a benchmark reruns decontamination."""
    return benchmark_inputs(list(ri.dedup_eval_sets(config, wildcards.dataset)))


def dedup_of(dataset, key):
    """An output of the dedup of the dataset whose download a dataset reuses (subsets share their source's)."""
    return of(getattr(rules.dedup_decontaminate.output, key), dataset=src(dataset))


def src_output(output):
    """Input function: a rule's output for the dataset whose KG/search a dataset reuses."""
    return lambda w: of(output, dataset=src(w.dataset))


def report_targets(wildcards=None):
    """Everything `make report` puts in report.html: per dataset that has been run its overview and card; per
    evaluated model its eval table and bars; every ablation table and Fig. 1 on disk."""
    targets = []
    for d in ri.run_datasets(config):
        targets += expand([rules.dataset_overview.output[0], rules.card_html.output[0]], dataset=d)
        targets += expand([rules.eval_table_html.output[0], rules.model_report.output.figure], dataset=d,
                          model=ri.evaluated_models(config, d))
    targets += [md[: -len(".md")] + ".html" for md in sorted(_glob.glob("results/paper/ablation_*.md"))]
    return targets + sorted(_glob.glob("results/paper/fig1_*.png"))
