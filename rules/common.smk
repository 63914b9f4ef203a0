# Config resolution, cross-checks and input helpers shared by every stage.
import datetime as _dt
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from lib.common import workflow_config as wc  # noqa: E402

try:
    wc.validate_config(config, Path(workflow.basedir) / "config" / "schema.yaml")
    wc.check(config, Path(workflow.basedir))
except wc.ConfigError as _e:
    raise WorkflowError(f"Invalid configuration: {_e}")


onstart:
    # Checked before the first job of a real run (a dry run plans offline and needs neither): the API keys of the
    # web search backends about to run, and the data of the benchmarks the evaluate jobs will read.
    try:
        _jobs = list(workflow.dag.needrun_jobs())
        _suites = sorted({ds(j.wildcards.dataset).get("eval_suite", "paper") for j in _jobs if j.rule.name == "evaluate"}
                         | {config["evaluation"].get("baseline_suite", "paper") for j in _jobs
                            if j.rule.name == "evaluate_baseline"})
        wc.check_benchmarks_present(config, _suites, RULE_BUILT_EVAL_ROOTS | PREPARED_EVAL_ROOTS)
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
    """Merged config of a dataset (clear error for an unknown name); cached: input functions call it per job."""
    if dataset not in _DS_CACHE:
        try:
            _DS_CACHE[dataset] = wc.dataset_config(config, dataset)
        except wc.ConfigError as e:
            raise WorkflowError(str(e))
    return _DS_CACHE[dataset]


FUNGUS = "Q764"


def living_roots_of(dataset):
    """living_roots, plus fungus (Q764) when living.include_fungi is true (the authors queried animals and plants
    only; their fungi came from WordNet)."""
    d = ds(dataset)
    roots = list(d.get("living_roots", []))
    if (d.get("living") or {}).get("include_fungi") and FUNGUS not in roots:
        roots.append(FUNGUS)
    return roots


def src(dataset):
    """Dataset whose KG/search/download a dataset reuses (itself unless subset_of)."""
    return wc.source_dataset(config, dataset)


def recipe(model, dataset=None):
    """Recipe of a model as trained on a dataset (the dataset's model_overrides merged in); clear error if unknown."""
    try:
        return wc.model_recipe(config, model, dataset)
    except wc.ConfigError as e:
        raise WorkflowError(str(e))


def gpus_per_node(model, dataset):
    """GPUs a train job asks for on each node: the recipe's ``gpus``, or 0 for a CPU recipe (``device: cpu``, whose
    ``gpus`` counts training processes only)."""
    r = recipe(model, dataset)
    return 0 if r.get("device") == "cpu" else int(r.get("gpus", 0))


def global_batch(model, dataset):
    """Global batch of a recipe: per-process ``batch_size`` x training processes (``gpus``, at least 1) x nodes."""
    r = recipe(model, dataset)
    return int(r["batch_size"]) * max(1, int(r.get("gpus", 0))) * max(1, int(r.get("nodes", 1)))


def fig1_models(dataset):
    """Models drawn in the dataset's Fig. 1 (``datasets.<name>.fig1_models``)."""
    return list(ds(dataset).get("fig1_models", []))


def train_shards_dir(wildcards):
    """Shards the train job reads: results/{dataset}/shards, or shards_s{N} (rule resize_shards) when the recipe
    sets stored_short_side."""
    side = recipe(wildcards.model, wildcards.dataset).get("stored_short_side")
    if side is None:
        return f"results/{wildcards.dataset}/shards"
    return f"results/{wildcards.dataset}/shards_s{int(side)}"


def chunk_ids(n):
    return [f"{i:05d}" for i in range(int(n))]


def search_hits(wildcards):
    d = ds(wildcards.dataset)
    return expand(
        "results/{dataset}/search/{backend}/chunk_{chunk}.parquet",
        dataset=wildcards.dataset,
        backend=sorted(d["search"]["backends"]),
        chunk=chunk_ids(d["search"]["n_chunks"]),
    )


def download_chunks(wildcards):
    s = src(wildcards.dataset)
    return expand(
        "results/{dataset}/download/chunk_{chunk}",
        dataset=s,
        chunk=chunk_ids(ds(s)["download"]["n_chunks"]),
    )


# Evaluation sets that a rule of this workflow builds (rule build_demo_evalset); others are user-provided.
RULE_BUILT_EVAL_ROOTS = {"resources/eval/demo_heldout"}


def benchmark_inputs(names):
    """Roots of the named benchmarks that a rule builds (build_demo_evalset, prepare_benchmark), less
    evaluation.skip. Plan-time check: a benchmark that is neither on disk nor preparable stops the run here."""
    try:
        prepared = wc.benchmark_inputs(config, [n for n in names if config["benchmarks"][n].get("root")
                                                not in RULE_BUILT_EVAL_ROOTS])
    except wc.ConfigError as e:
        raise WorkflowError(f"Benchmark data cannot be prepared: {e}")
    built = [config["benchmarks"][n].get("root") for n in names
             if config["benchmarks"][n].get("root") in RULE_BUILT_EVAL_ROOTS]
    return sorted(set(built) | set(prepared))


def eval_inputs(wildcards):
    """The benchmark roots of the dataset's suite that rules build become inputs of its evaluate job."""
    return benchmark_inputs(list(wc.suite(config, wildcards.dataset)))


def baseline_eval_inputs(wildcards):
    return benchmark_inputs(list(wc.suite_by_name(config, config["evaluation"].get("baseline_suite", "paper"))))


# Roots that prepare_benchmark builds (data/benchmarks/<name> with a source), "built by rules" for onstart.
PREPARED_EVAL_ROOTS = {b["root"] for n, b in config["benchmarks"].items() if wc.prepared_by_rule(n, b)}


# Eval roots that a rule of this workflow builds; they are inputs of dedup_decontaminate, so they exist when it runs.
def dedup_eval_sets(dataset):
    """{benchmark: root} to decontaminate against: datasets.<name>.dedup.eval_sets, default the eval suite."""
    names = ds(dataset).get("dedup", {}).get("eval_sets")
    if names is None:
        names = list(wc.suite(config, dataset))
    unknown = [n for n in names if n not in config["benchmarks"]]
    if unknown:
        raise WorkflowError(
            f"datasets.{dataset}.dedup.eval_sets: {unknown} not in benchmarks ({sorted(config['benchmarks'])})"
        )
    skip = set(config["evaluation"].get("skip") or [])
    return {n: config["benchmarks"][n]["root"] for n in names if n not in skip}


def dedup_skipped(dataset):
    """Eval sets of the dataset opted out with evaluation.skip (listed in counts.json and on the card)."""
    names = ds(dataset).get("dedup", {}).get("eval_sets")
    names = list(wc.suite(config, dataset)) if names is None else names
    return [n for n in names if n in set(config["evaluation"].get("skip") or [])]


def dedup_eval_inputs(wildcards):
    """Rule-built roots of the eval sets: inputs, so adding or re-preparing a benchmark reruns decontamination."""
    return benchmark_inputs(list(dedup_eval_sets(wildcards.dataset)))


def dedup_of(dataset, name):
    """An output of the dedup of the dataset whose download a dataset reuses (subsets share their source's)."""
    s = src(dataset)
    return f"results/{s}/urls_dedup.parquet" if name == "urls" else f"results/{s}/dedup/{name}"


from lib.common.artifact_columns import CARD_PLOTS  # noqa: E402  (the dataset card's plots; one home, scripts/lib/common/artifact_columns.py)


def ablation_models(wildcards):
    """The paper's alt-text ablation: 0 %, the recipe's default mix (50 %), 100 %."""
    base = wildcards.recipe if recipe(wildcards.recipe, wildcards.dataset).get("alt_text_chance", 0.5) == 0.5 else f"{wildcards.recipe}-alt50"
    return [f"{wildcards.recipe}-alt0", base, f"{wildcards.recipe}-alt100"]


_dt_cfg = config.get("default_target", {})
DEFAULT_TARGETS = [
    "results/{d}/{m}/eval.csv".format(d=_dt_cfg.get("dataset", "demo"), m=_dt_cfg.get("model", "tiny")),
    "results/{d}/{m}/report/eval_table.md".format(
        d=_dt_cfg.get("dataset", "demo"), m=_dt_cfg.get("model", "tiny")
    ),
    "results/{d}/card/card.md".format(d=_dt_cfg.get("dataset", "demo")),
]


# The report (rules/report.smk): the datasets and models that have been run.
import glob as _glob


def evaluated_models(dataset):
    """Models of a dataset that have an eval.csv on disk, plus the default target's model on its dataset: what the
    overview and `make report` show ("the datasets and models that have been run")."""
    found = {Path(p).parent.name for p in _glob.glob(f"results/{dataset}/*/eval.csv")}
    dt = config.get("default_target", {})
    if dataset == dt.get("dataset", "demo"):
        found.add(dt.get("model", "tiny"))
    valid = [m for m in found if m.split("-alt")[0] in config["models"]]
    return sorted(valid)


def run_datasets():
    """Datasets (of the config) with a dataset card on disk, plus the default target's dataset."""
    found = {Path(p).parts[1] for p in _glob.glob("results/*/card/card.md")}
    found.add(config.get("default_target", {}).get("dataset", "demo"))
    return sorted(d for d in found if d in config["datasets"])


def report_targets(wildcards=None):
    """Everything `make report` puts in report.html: per dataset that has been run its overview and card; per
    evaluated model its eval table and bars; every ablation table and Fig. 1 on disk."""
    targets = []
    for d in run_datasets():
        targets += [f"results/{d}/overview.html", f"results/{d}/card/card.html"]
        for m in evaluated_models(d):
            targets += [f"results/{d}/{m}/report/eval_table.html", f"results/{d}/{m}/report/eval_bars.png"]
    for md in sorted(_glob.glob("results/paper/ablation_*.md")):
        targets.append(md[: -len(".md")] + ".html")
    targets += sorted(_glob.glob("results/paper/fig1_*.png"))
    return targets


# The default target's report pages (built by `snakemake` with the demo).
_dt_d = config.get("default_target", {}).get("dataset", "demo")
_dt_m = config.get("default_target", {}).get("model", "tiny")
DEFAULT_REPORT_TARGETS = [
    f"results/{_dt_d}/overview.html",
    f"results/{_dt_d}/card/card.html",
    f"results/{_dt_d}/{_dt_m}/report/eval_table.html",
]
