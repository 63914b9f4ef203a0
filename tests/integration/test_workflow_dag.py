"""Dry-run DAG tests for the documented targets, lint, and config refused before any job starts."""
import re
import sys

import pytest
import yaml

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from workflow_helpers import REPO, job_counts, make_workdir, snakemake, with_local_benchmarks  # noqa: E402

CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


@pytest.fixture()
def wd(tmp_path):
    return make_workdir(tmp_path / "wd")


def test_lint_is_clean():
    r = snakemake(REPO, "--lint", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_default_target_is_the_demo_chain(wd):
    r = snakemake(wd, "-n", "--cores", "1", timeout=120)
    assert r.returncode == 0, r.stderr
    counts = job_counts(r.stdout)
    chain = ["kg_dump", "kg_entities", "kg_attributes", "build_queries", "pool_index", "search", "merge_search",
             "download", "dedup_decontaminate", "build_shards", "dataset_card", "text_candidates", "train",
             "build_demo_evalset", "evaluate", "model_report", "card_html", "eval_table_html", "dataset_overview",
             "all"]
    assert set(counts) == set(chain)
    assert counts["search"] == CONFIG["datasets"]["demo"]["search"]["n_chunks"]
    assert "results/demo/tiny/eval.csv" in r.stdout


def test_entitynet_eval_plans_full_chain_offline(wd):
    r = snakemake(wd, "-n", "--cores", "1", "results/entitynet/vitb32/eval.csv", *with_local_benchmarks(wd),
                  timeout=300)
    assert r.returncode == 0, r.stderr
    counts = job_counts(r.stdout)
    ds = CONFIG["datasets"]["entitynet"]
    assert counts["prepare_benchmark"] == len(CONFIG["evaluation"]["suites"]["paper"])  # each root by its name
    assert counts["search"] == ds["search"]["n_chunks"] * len(ds["search"]["backends"])
    assert counts["download"] == ds["download"]["n_chunks"]
    for rule in ("kg_dump", "kg_entities", "kg_attributes", "build_queries", "merge_search", "build_shards",
                 "text_candidates", "train", "evaluate"):
        assert counts[rule] == 1, rule
    assert "https://qlever.cs.uni-freiburg.de/api/wikidata" not in r.stderr  # nothing was contacted
    assert "resize_shards" not in counts  # the paper's storage: train straight from the downloaded shards


def test_ablation_and_livingthings_targets(wd):
    r = snakemake(wd, "-n", "--cores", "1", "results/entitynet/vitb32-alt0/eval.csv",
                  "results/livingthings/vitb32/eval.csv", *with_local_benchmarks(wd), timeout=300)
    assert r.returncode == 0, r.stderr
    counts = job_counts(r.stdout)
    assert counts["train"] == 2 and counts["build_shards"] == 2
    assert counts["download"] == CONFIG["datasets"]["entitynet"]["download"]["n_chunks"]  # livingthings reuses it
    assert "results/livingthings/download/" not in r.stdout and "results/livingthings/search/" not in r.stdout


def test_paper_targets(wd):
    r = snakemake(wd, "-n", "--cores", "1", "results/paper/ablation_demo_tiny.md", timeout=120)
    assert r.returncode == 0, r.stderr
    counts = job_counts(r.stdout)
    assert counts["train"] == 3 and counts["ablation_table"] == 1
    for m in ("tiny-alt0", "tiny-alt100"):
        assert f"results/demo/{m}/eval.csv" in r.stdout


def test_stored_short_side_plans_one_resize_job(wd):
    """models.<name>.stored_short_side: one resize_shards job, and the train job reads its shards_s<N> output."""
    (wd / "s384.yaml").write_text("models: {vitb32: {stored_short_side: 384}}")
    r = snakemake(wd, "results/entitynet/vitb32/eval.csv", "results/entitynet/vitb16/eval.csv", "-n", "--cores", "1",
                  *with_local_benchmarks(wd), str(wd / "s384.yaml"), timeout=300)
    assert r.returncode == 0, r.stderr
    counts = job_counts(r.stdout)
    assert counts["resize_shards"] == 1 and counts["train"] == 2 and counts["build_shards"] == 1
    jobs = re.split(r"\n(?=(?:local)?rule \w+:)", r.stdout)  # one block per planned job
    resize = [j for j in jobs if j.startswith("rule resize_shards:")]
    assert len(resize) == 1
    assert "input: results/entitynet/shards\n" in resize[0] and "output: results/entitynet/shards_s384\n" in resize[0]
    train = {m: next(j for j in jobs if j.startswith("rule train:") and f"entitynet/{m}/model.safetensors" in j)
             for m in ("vitb32", "vitb16")}
    assert "input: results/entitynet/shards_s384, results/entitynet/text_candidates.parquet" in train["vitb32"]
    # a recipe without stored_short_side (the paper's default) trains from the downloaded shards
    assert "input: results/entitynet/shards, results/entitynet/text_candidates.parquet" in train["vitb16"]


BAD_CONFIGS = [
    ("datasets: {demo: {roots: [Q729, 'Q1 } ; DROP ALL']}}", "roots"),
    ("datasets: {demo: {roots: [q729]}}", "q729"),
    ("datasets: {demo: {kg: {language: 'en\" } '}}}", "language"),
    ("datasets: {demo: {search: {backends: {bing_v7: {max_results: 5}}}}}", "bing_v7"),
    ("models: {tiny: {samples_seen: -5}}", "samples_seen"),
    ("datasets: {demo: {kg: {endpoint: 'file:resources/demo/kg/missing.ttl'}}}", "missing.ttl"),
    ("datasets: {demo: {eval_suite: nosuch}}", "nosuch"),
    ("datasets: {demo: {download: {serve_local: {directory: resources/demo/photos, bind: '10.0.0.1:80'}}}}", "bind"),
    # reliability suite (issue 10): SPARQL in a living root, unknown models where the config names one, a negative
    # per-query budget, shell in a key variable name (a missing key is refused at run start: tests/reliability)
    ("datasets: {demo: {living_roots: ['Q729 } UNION { ?s ?p ?o }']}}", "living_roots"),
    ("default_target: {dataset: demo, model: gpt5}", "default_target.model: unknown model 'gpt5'"),
    ("datasets: {demo: {fig1_models: [vitb32, vitb64]}}", "datasets.demo.fig1_models: unknown model 'vitb64'"),
    ("datasets: {demo: {search: {backends: {pool: {path: resources/demo/pool.csv, max_results: -1}}}}}",
     "max_results"),
    ("datasets: {entitynet: {search: {backends: {serpapi_google: {api_key_env: 'K; rm -rf ~'}}}}}", "api_key_env"),
    # issue 7: stored shards too small for the training crops
    ("models: {vitb32: {stored_short_side: 256}}", "models.vitb32.stored_short_side: 256 px is below 374 px"),
    # accepted by the plan and refused by a job hours later, until they were checked at plan time
    ("models: {tiny: {arch: NoSuchArch}}", "models.tiny.arch: arch 'NoSuchArch' is neither"),
    ("datasets: {entitynet: {search: {backends: {serpapi_bing: {max_result: 5}}}}}",
     "unknown key(s) 'max_result' (did you mean 'max_results'"),
    ("datasets: {demo: {queries: {max_per_kind: {wd-noun-wrld: 3}}}}", "unknown kind(s) 'wd-noun-wrld'"),
    ("datasets: {demo: {download: {serve_local: {directory: resources/demo/photos, bind: '127.0.0.1:99999'}}}}",
     "port must be 1..65535"),
    ("datasets: {demo: {natural_types: {mode: llm}}}", "datasets.demo.llm.base_url: required"),
    ("datasets: {rehearsal: {inherits: nosuch}}", "datasets.rehearsal.inherits: unknown dataset 'nosuch'"),
    # issue 18: refused at plan time with the key path and what was expected
    ("datasets: {demo: {attributes: {mode: llm}, llm: {base_url: 'https://api.openai.com/v1', model: m}}}",
     "datasets.demo.llm.api_key_env: required"),
    ("datasets: {demo: {queries: {kinds: [wordnet-noun-living]}}}", "'wordnet-noun-living' needs datasets.demo.wordnet.dir"),
    ("benchmarks: {cub200: {dataset: imagenet1kk}}", "benchmarks.cub200.dataset: 'imagenet1kk' is not a clip_benchmark"),
]


def test_schema_error_is_short_and_suggests_the_key(wd):
    """A key typo gives one short paragraph naming the key path and the closest allowed key, not the schema."""
    (wd / "typo.yaml").write_text("dataset_defaults: {min_sitelink: 3}")
    r = snakemake(wd, "-n", "--cores", "1", "--configfile", str(wd / "config/config.yaml"), str(wd / "typo.yaml"),
                  timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "dataset_defaults: unknown key 'min_sitelink' (did you mean 'min_sitelinks'?)" in out, out[-2000:]
    assert len(out.splitlines()) < 25 and "$defs" not in out, out


@pytest.mark.parametrize("override,needle", BAD_CONFIGS)
def test_bad_config_refused_before_any_job(wd, override, needle):
    (wd / "bad.yaml").write_text(override)
    r = snakemake(wd, "-n", "--cores", "1", "--configfile", str(wd / "config/config.yaml"), str(wd / "bad.yaml"),
                  timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert needle in out, out[-2000:]
    assert "Job stats" not in r.stdout


@pytest.mark.parametrize("target,needle", [
    ("results/nosuch/tiny/eval.csv", "unknown dataset 'nosuch'"),
    ("results/demo/gpt5/eval.csv", "unknown model 'gpt5'"),
])
def test_unknown_names_refused(wd, target, needle):
    r = snakemake(wd, "-n", "--cores", "1", target, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and needle in out, out[-2000:]


@pytest.mark.parametrize("dry", [True, False])
def test_flagship_without_imagenet_stops_at_planning(wd, dry):
    """The flagship target without ImageNet-1k (licence: supplied locally) stops while planning, before any job
    (dry or real run): nothing is harvested for days to be evaluated on nothing. The message names the benchmark, the
    key and where to get it. (The API key is set, so that check passes.)"""
    # should the check ever fail to fire, the KG dump must not leave this machine: a closed loopback port
    (wd / "loopback.yaml").write_text("datasets: {entitynet: {kg: {endpoint: 'http://127.0.0.1:9/query'}}}")
    r = snakemake(wd, "results/entitynet/vitb32/eval.csv", "--cores", "1", *(["-n"] if dry else []),
                  "--configfile", str(wd / "config/config.yaml"), str(wd / "loopback.yaml"), timeout=300,
                  env={"SERPAPI_API_KEY": "set-but-unused"})
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "benchmark imagenet1k cannot be prepared" in out, out[-3000:]
    assert "benchmarks.imagenet1k.source.local_path" in out and "https://image-net.org/download.php" in out
    assert "evaluation.skip: [imagenet1k]" in out and "cub200" not in out.split("Traceback")[0].split("WorkflowError")[-1]
    assert not (wd / "resources/kg/entitynet").exists() and not (wd / "results/entitynet").exists()


def test_skipping_the_local_benchmarks_plans_the_rest(wd):
    """evaluation.skip opts out: no prepare job for the skipped ones, one for each other benchmark of the suite."""
    (wd / "skip.yaml").write_text("evaluation: {skip: [imagenet1k, inat2021, rare_species]}")
    r = snakemake(wd, "-n", "--cores", "1", "results/entitynet/vitb32/eval.csv", "--configfile",
                  str(wd / "config/config.yaml"), str(wd / "skip.yaml"), timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert job_counts(r.stdout)["prepare_benchmark"] == len(CONFIG["evaluation"]["suites"]["paper"]) - 3
    assert "data/benchmarks/cub200" in r.stdout and "data/benchmarks/imagenet1k" not in r.stdout
