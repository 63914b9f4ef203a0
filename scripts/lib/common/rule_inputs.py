"""What the rules ask of the resolved config beyond one value (imported by rules/common.smk).

The living roots a KG job queries, a recipe's GPUs per node and global batch, the eval sets a dedup job
decontaminates against (and those opted out with ``evaluation.skip``), the benchmark roots that rules build, the
models of the alt-text ablation, and the datasets and models the report shows. Functions of the config (resolved by
workflow_config: defaults filled) and, for the report, of the results on disk; the paths of rule outputs stay in
rules/*.smk.
"""

import glob
from pathlib import Path

from lib.common import workflow_config as wc

FUNGUS = "Q764"
# Evaluation sets that a rule of this workflow builds (rule build_demo_evalset); others are user-provided.
RULE_BUILT_EVAL_ROOTS = {"resources/eval/demo_heldout"}


def released_datasets(config: dict, entities: bool = False) -> list[str]:
    """Datasets with ``search.released_metadata`` (rule import_released_metadata instead of the search), or with
    ``entities``: those whose released metadata also names the authors' entity table (import_released_entities)."""
    out = []
    for name in sorted(config["datasets"]):
        released = wc.dataset_config(config, name)["search"]["released_metadata"]
        if released and (not entities or released.get("entities")):  # entities: optional key, null = the KG
            out.append(name)
    return out


def living_roots(d: dict) -> list[str]:
    """A resolved dataset's ``living_roots``, plus fungus (Q764) when ``living.include_fungi`` is true (the authors
    queried animals and plants only; their fungi came from WordNet)."""
    roots = list(d["living_roots"])
    if d["living"]["include_fungi"] and FUNGUS not in roots:
        roots.append(FUNGUS)
    return roots


def gpus_per_node(r: dict) -> int:
    """GPUs a train job asks for on each node: the recipe's ``gpus``, or 0 for a CPU recipe (``device: cpu``, whose
    ``gpus`` counts training processes only)."""
    return 0 if r["device"] == "cpu" else int(r["gpus"])


def global_batch(r: dict) -> int:
    """Global batch of a recipe: per-process ``batch_size`` x training processes (``gpus``, at least 1) x nodes."""
    return int(r["batch_size"]) * max(1, int(r["gpus"])) * max(1, int(r["nodes"]))


def chunk_ids(n: int) -> list[str]:
    """The ``{chunk}`` wildcard values of ``n`` chunks: 00000, 00001, ..."""
    return [f"{i:05d}" for i in range(int(n))]


def prepared_eval_roots(config: dict) -> set[str]:
    """Roots that rule prepare_benchmark builds (data/benchmarks/<name> with a source)."""
    return {b["root"] for n, b in config["benchmarks"].items() if wc.prepared_by_rule(n, b)}


def benchmark_inputs(config: dict, names) -> list[str]:
    """Roots of the named benchmarks that a rule builds (build_demo_evalset, prepare_benchmark), less
    ``evaluation.skip``. Plan-time check: a benchmark that is neither on disk nor preparable raises ConfigError."""
    roots = {n: config["benchmarks"][n].get("root") for n in names}  # a benchmark may have no root
    prepared = wc.benchmark_inputs(config, [n for n in names if roots[n] not in RULE_BUILT_EVAL_ROOTS])
    return sorted({r for r in roots.values() if r in RULE_BUILT_EVAL_ROOTS} | set(prepared))


def dedup_eval_sets(config: dict, dataset: str) -> dict[str, str]:
    """``{benchmark: root}`` the dataset's dedup decontaminates against (``dedup.eval_sets``, default its eval
    suite), less ``evaluation.skip``."""
    skip = set(config["evaluation"]["skip"])
    return {n: config["benchmarks"][n]["root"] for n in wc.dedup_eval_sets(config, dataset) if n not in skip}


def dedup_skipped(config: dict, dataset: str) -> list[str]:
    """Eval sets of the dataset opted out with ``evaluation.skip`` (listed in counts.json and on the card)."""
    skip = set(config["evaluation"]["skip"])
    return [n for n in wc.dedup_eval_sets(config, dataset) if n in skip]


def ablation_models(config: dict, recipe: str, dataset: str) -> list[str]:
    """The paper's alt-text ablation: 0 %, 50 % (the recipe itself when its own share is 50 %), 100 %."""
    half = recipe if wc.model_recipe(config, recipe, dataset)["alt_text_chance"] == 0.5 else f"{recipe}-alt50"
    return [f"{recipe}-alt0", half, f"{recipe}-alt100"]


def evaluated_models(config: dict, dataset: str) -> list[str]:
    """Models of a dataset that have an eval.csv on disk, plus the default target's model on its dataset: what the
    overview and `make report` show ("the datasets and models that have been run")."""
    found = {Path(p).parent.name for p in glob.glob(f"results/{dataset}/*/eval.csv")}
    if dataset == config["default_target"]["dataset"]:
        found.add(config["default_target"]["model"])
    return sorted(m for m in found if m.split("-alt")[0] in config["models"])


def run_datasets(config: dict) -> list[str]:
    """Datasets (of the config) with a dataset card on disk, plus the default target's dataset."""
    found = {Path(p).parts[1] for p in glob.glob("results/*/card/card.md")}
    found.add(config["default_target"]["dataset"])
    return sorted(d for d in found if d in config["datasets"])
