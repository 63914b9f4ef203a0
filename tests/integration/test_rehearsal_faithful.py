"""The rehearsal is the flagship run in miniature: it differs from ``entitynet`` x ``vitb32`` only where an
allow-list below says so, each entry with its reason. A new difference (in the dataset's merged config, in the
training command line, or in the set of rules the target needs) fails these tests until someone adds it to the
list on purpose.
"""
import fnmatch

import pytest
import yaml

from lib.train import launch
from lib.common import workflow_config as wc
from conftest import REPO
from rehearsal import run as rehearsal
from rehearsal.benchmark_sources import build_sources
from rehearsal.servers import PHOTOS, free_port_base
from workflow_helpers import job_counts, make_workdir, snakemake, with_local_benchmarks

CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())
FLAGSHIP, REHEARSAL = ("entitynet", "vitb32"), ("rehearsal", "vitb32")

# Dotted key paths of the merged dataset config (fnmatch patterns) that may differ, and why.
ALLOWED_CONFIG_DIFFERENCES = {
    "description": "its own description",
    "inherits": "the rehearsal inherits entitynet",
    "kg.endpoint": "endpoint: oxigraph serve-read-only on 127.0.0.1 over the bundled extract",
    "kg.page_size": "size",
    "kg.allow_empty_roots": "the bundled extract has no fungi (Q764)",
    "min_sitelinks": "the bundled extract carries no sitelink counts (all would be dropped)",
    "living.require_image": "the bundled extract carries no P18 for the mapped taxa",
    "visual_filter.min_sitelinks_without_image": "the bundled extract has P18 and sitelinks for few items only",
    "natural_types.living_min_sitelinks": "the bundled extract has sitelinks for few items only",
    "wordnet.max_synsets": "size",
    "queries.max_per_kind.*": "size",
    "search.n_chunks": "size (still several chunks)",
    "search.backends.*.max_results": "size",
    "search.backends.*.base_url": "endpoint: the SerpAPI stand-in on 127.0.0.1",
    "search.backends.*.requests_per_second": "the stand-in's rate limit, not SerpAPI's",
    "download.n_chunks": "size (still several chunks)",
    "download.timeout_s": "size",
    "download.thread_count": "size",
    "download.samples_per_shard": "size",
    "shards.val_size": "size",
    "shards.samples_per_shard": "size",
    "model_overrides.*": "the recipe's sizes; checked flag by flag below",
}

# Training flags (of the launcher and of open_clip_train) that may differ, and why.
ALLOWED_FLAG_DIFFERENCES = {
    "--nproc-per-node": "2 CPU processes instead of 8 GPUs (the same torchrun launcher)",
    "--model": "ViT-mini-32-ctx32: ViT-B/32's input size, patch size and context length at width 64, 2 layers",
    "--device": "cpu (gloo) instead of the default cuda (nccl)",
    "--train-data": "path under results/<dataset>/, and fewer shards",
    "--val-data": "path under results/<dataset>/",
    "--logs": "path under results/<dataset>/",
    "--entitynet-text-candidates": "path under results/<dataset>/",
    "--train-num-samples": "size",
    "--val-num-samples": "size",
    "--epochs": "size",
    "--batch-size": "size",
    "--warmup": "size (follows epochs and batch size)",
    "--workers": "size",
}

# Keys of the benchmarks' config that the rehearsal's overlay (tests/rehearsal/servers.py) sets, and why. The roots,
# dataset names, tasks, variants and the Hub repositories and revisions stay the config's: the rehearsal builds
# data/benchmarks/<name> with rule prepare_benchmark, from the same kind of source as the flagship run.
ALLOWED_BENCHMARK_OVERLAY = {
    "*.expected.*": "size: the fixtures' image, class counts",
    "cub200.source.url": "endpoint: the fixture's CUB_200_2011.tgz on the loopback image host",
    "inat2021.source.images_url": "endpoint: the fixture's val.tar.gz on the loopback image host",
    "inat2021.source.annotations_url": "endpoint: the fixture's val.json.tar.gz on the loopback image host",
    "xm3600.source.captions_url": "endpoint: the fixture's captions.jsonl on the loopback image host",
    "xm3600.source.images_url": "endpoint: the fixture's images.tgz on the loopback image host",
    "imagenet1k.source.local_path": "supplied locally, as in the flagship run (licence): the fixture's folder",
}


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):  # an empty mapping adds no key (it sets nothing)
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(a: dict, b: dict) -> set[str]:
    fa, fb = flatten(a), flatten(b)
    return {k for k in set(fa) | set(fb) if fa.get(k, "<absent>") != fb.get(k, "<absent>")}


def train_command(dataset: str, model: str) -> list[str]:
    """The train rule's command line for (dataset, model), built by the same functions as the rule."""
    rec = wc.model_recipe(CONFIG, model, dataset)
    gpus, nodes = int(rec.get("gpus", 0)), int(rec.get("nodes", 1))
    args = launch.build_train_args(rec, f"results/{dataset}/shards/train/{{00000..00003}}.tar",
                                  f"results/{dataset}/shards/val/00000.tar",
                                  int(wc.dataset_config(CONFIG, dataset)["shards"]["val_size"]),
                                  f"results/{dataset}/{model}/openclip",
                                  f"results/{dataset}/text_candidates.parquet", gpus)
    return launch.launcher(gpus, nodes) + args


def as_flags(cmd: list[str]) -> dict[str, tuple]:
    """``--flag value...`` and ``--flag=value`` tokens as {flag: values}; tokens before the first flag under ''."""
    out, cur = {"": []}, ""
    for tok in cmd:
        if tok.startswith("--") and tok != "--":
            flag, eq, val = tok.partition("=")
            out[flag] = [val] if eq else []
            cur = "" if eq else flag  # "--flag=value" takes no further tokens
        else:
            out[cur if tok != "--" else ""].append(tok)
    out[""] = [t.rsplit("/", 1)[-1] for t in out[""]]  # the interpreter's path differs between machines
    return {k: tuple(v) for k, v in out.items()}


def flag_differences(a: list[str], b: list[str]) -> set[str]:
    fa, fb = as_flags(a), as_flags(b)
    return {k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k)}


def test_rehearsal_config_differs_only_where_allowed():
    diff = config_differences(wc.dataset_config(CONFIG, FLAGSHIP[0]), wc.dataset_config(CONFIG, REHEARSAL[0]))
    unexpected = sorted(k for k in diff if not any(fnmatch.fnmatch(k, p) for p in ALLOWED_CONFIG_DIFFERENCES))
    assert not unexpected, f"the rehearsal differs from entitynet at {unexpected}: make it the same, or add the key " \
                           "to ALLOWED_CONFIG_DIFFERENCES with the reason"
    # the things that make it the flagship's path
    reh = wc.dataset_config(CONFIG, REHEARSAL[0])
    assert sorted(reh["search"]["backends"]) == ["serpapi_bing", "serpapi_google"]
    assert reh["search"]["n_chunks"] > 1 and reh["download"]["n_chunks"] > 1
    assert reh["eval_suite"] == "paper" and reh["queries"]["kinds"] == wc.dataset_config(CONFIG, "entitynet")[
        "queries"]["kinds"]


@pytest.mark.parametrize("model", ["vitb32", "vitb32-alt0", "vitb32-alt100", "vitb16"])
def test_rehearsal_training_command_differs_only_in_allowed_flags(model):
    flagship, rehearsal = train_command(FLAGSHIP[0], model), train_command(REHEARSAL[0], model)
    diff = flag_differences(flagship, rehearsal)
    unexpected = sorted(diff - set(ALLOWED_FLAG_DIFFERENCES))
    assert not unexpected, (f"{model}: the rehearsal's training command differs in {unexpected}:\n"
                            f"flagship  {flagship}\nrehearsal {rehearsal}")
    f, r = as_flags(flagship), as_flags(rehearsal)
    assert f[""] == r[""] and f[""][1:] == ("-m", "torch.distributed.run", "train_openclip.py", "--"), f[""]
    for same in ("--entitynet-data-path", "--entitynet-alt-text-chance", "--precision", "--local-loss", "--aug-cfg",
                 "--lr", "--wd", "--dataset-resampled", "--standalone"):
        assert f.get(same) == r.get(same), same
    assert r["--nproc-per-node"] == ("2",) and r["--device"] == ("cpu",)


def test_allow_lists_are_live():
    """Every allowed difference still exists: a stale entry would hide the next real difference of that name."""
    diff = config_differences(wc.dataset_config(CONFIG, FLAGSHIP[0]), wc.dataset_config(CONFIG, REHEARSAL[0]))
    stale = [p for p in ALLOWED_CONFIG_DIFFERENCES if not any(fnmatch.fnmatch(k, p) for k in diff)]
    assert not stale, f"no longer different, remove from ALLOWED_CONFIG_DIFFERENCES: {stale}"
    flags = flag_differences(train_command(*FLAGSHIP), train_command(*REHEARSAL))
    stale = sorted(set(ALLOWED_FLAG_DIFFERENCES) - flags)
    assert not stale, f"no longer different, remove from ALLOWED_FLAG_DIFFERENCES: {stale}"


def test_a_new_difference_is_caught():
    """The check itself: a changed data path (or a pinned alt-text chance) is not on any allow-list."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["datasets"]["rehearsal"]["model_overrides"]["vitb32"]["data_path"] = "stock"
    rec_f, rec_r = wc.model_recipe(cfg, "vitb32", "entitynet"), wc.model_recipe(cfg, "vitb32", "rehearsal")
    a = launch.build_train_args(rec_f, "t", "v", 1, "l", "c", 8)
    b = launch.build_train_args(rec_r, "t", "v", 1, "l", "c", 2)
    assert "--entitynet-data-path" in flag_differences(a, b) - set(ALLOWED_FLAG_DIFFERENCES)
    cfg["datasets"]["rehearsal"]["search"]["backends"]["serpapi_bing"]["engine_extra"] = 1
    diff = config_differences(wc.dataset_config(cfg, "entitynet"), wc.dataset_config(cfg, "rehearsal"))
    assert "search.backends.serpapi_bing.engine_extra" in diff


def test_rehearsal_plans_the_same_rules_as_the_flagship(tmp_path):
    """The dry-run job graphs of results/rehearsal/vitb32/eval.csv and results/entitynet/vitb32/eval.csv have the same
    set of rules (the job counts differ: chunks)."""
    wd = make_workdir(tmp_path / "wf")
    rules = {}
    for dataset in (FLAGSHIP[0], REHEARSAL[0]):
        r = snakemake(wd, "-n", f"results/{dataset}/vitb32/eval.csv", *with_local_benchmarks(wd), timeout=600)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        rules[dataset] = set(job_counts(r.stdout + r.stderr))
        assert {"kg_dump", "search", "download", "train", "evaluate"} <= rules[dataset], rules[dataset]
    assert rules[FLAGSHIP[0]] == rules[REHEARSAL[0]]


def test_benchmark_overlay_sets_only_allowed_keys(tmp_path):
    """The rehearsal's benchmark overlay points each benchmark's source at a loopback copy (and its expected counts
    at the fixture's) and changes nothing else; every allowed key is still set (none stale)."""
    *_, overlay = build_sources(tmp_path / "s", PHOTOS, CONFIG["benchmarks"], CONFIG["evaluation"]["suites"]["paper"],
                                "http://127.0.0.1:1", "resources/rehearsal/benchmark_sources")
    keys = set(flatten(overlay))
    unexpected = sorted(k for k in keys if not any(fnmatch.fnmatch(k, p) for p in ALLOWED_BENCHMARK_OVERLAY))
    assert not unexpected, f"the rehearsal's benchmark overlay sets {unexpected}: add to ALLOWED_BENCHMARK_OVERLAY " \
                           "with the reason, or drop it"
    stale = [p for p in ALLOWED_BENCHMARK_OVERLAY if not any(fnmatch.fnmatch(k, p) for k in keys)]
    assert not stale, f"no longer set, remove from ALLOWED_BENCHMARK_OVERLAY: {stale}"
    assert not any(".root" in k or "classname_variants" in k or k.endswith((".repo", ".revision")) for k in keys)


def test_rehearsal_prepares_the_12_benchmarks_by_rule_before_dedup(tmp_path):
    """The rehearsal's dry run (the runner with its endpoints) plans one prepare_benchmark job per paper benchmark,
    and dedup_decontaminate reads the roots they build (data/benchmarks/<name>, no fixture written in place)."""
    r = rehearsal.run(tmp_path / "wd", cores=2, extra=["-n"], timeout=600, capture=True, port_base=free_port_base())
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    suite = CONFIG["evaluation"]["suites"]["paper"]
    assert job_counts(out)["prepare_benchmark"] == len(suite) == 12
    block = out.split("rule dedup_decontaminate:", 1)[1].split("\n\n", 1)[0]
    inputs = block.split("input:", 1)[1].split("\n", 1)[0]
    assert {f"data/benchmarks/{n}" for n in suite} <= {x.strip() for x in inputs.split(",")}, block
    assert not (tmp_path / "wd/data/benchmarks").exists()  # planned, not written by the runner
