"""A web search backend selected without its API key: refused when a real run starts, before any job, with a message
naming the variable and the config key; a dry run still plans offline without keys.

The check is ``workflow_config.check_api_keys`` called from the ``onstart`` hook in rules/common.smk (Snakemake
calls ``onstart`` after building the DAG and before scheduling the first job, never in a dry run). The other bad
configs (malformed QIDs, SPARQL in a QID, unknown backend/model, negative budgets) are rows of BAD_CONFIGS in
tests/integration/test_workflow_dag.py.
"""
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rel_common import record  # noqa: E402,F401 (fixture)

from lib.common import workflow_config as wc  # noqa: E402
from workflow_helpers import REPO, job_counts, make_workdir, snakemake  # noqa: E402

CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())
BRAVE = {"base_url": "http://127.0.0.1:9", "max_results": 5}


def with_backends(**backends) -> dict:
    cfg = yaml.safe_load(yaml.safe_dump(CONFIG))
    cfg["datasets"]["demo"]["search"]["backends"].update(backends)
    return cfg


# (backends added to demo, search jobs about to run, environment, expected {variable: [config keys]})
CASES = [
    ("no web backend", {}, [("demo", "pool")], {}, {}),
    ("brave, no key", {"brave": BRAVE}, [("demo", "brave")], {}, {"BRAVE_API_KEY": ["datasets.demo.search.backends.brave"]}),
    ("brave, blank key", {"brave": BRAVE}, [("demo", "brave")], {"BRAVE_API_KEY": "  "},
     {"BRAVE_API_KEY": ["datasets.demo.search.backends.brave"]}),
    ("brave, key set", {"brave": BRAVE}, [("demo", "brave")], {"BRAVE_API_KEY": "k-123456"}, {}),
    ("brave configured but not about to run", {"brave": BRAVE}, [("demo", "pool")], {}, {}),
    ("serpapi, both engines, one variable", {"serpapi_google": {}, "serpapi_bing": {}},
     [("demo", "serpapi_google"), ("demo", "serpapi_bing")], {},
     {"SERPAPI_API_KEY": ["datasets.demo.search.backends.serpapi_bing",
                          "datasets.demo.search.backends.serpapi_google"]}),
    ("api_key_env renames the variable", {"serpapi_bing": {"api_key_env": "MY_SERP"}}, [("demo", "serpapi_bing")],
     {"SERPAPI_API_KEY": "k-123456"}, {"MY_SERP": ["datasets.demo.search.backends.serpapi_bing"]}),
    ("openverse is keyless", {"openverse": {}}, [("demo", "openverse")], {}, {}),
    ("openverse with a token variable", {"openverse": {"api_key_env": "OPENVERSE_TOKEN"}}, [("demo", "openverse")],
     {}, {"OPENVERSE_TOKEN": ["datasets.demo.search.backends.openverse"]}),
    ("entitynet's configured serpapi engines", {}, [("entitynet", "serpapi_google"), ("entitynet", "serpapi_bing")],
     {}, {"SERPAPI_API_KEY": ["datasets.entitynet.search.backends.serpapi_bing",
                              "datasets.entitynet.search.backends.serpapi_google"]}),
]


@pytest.mark.parametrize("name,backends,jobs,env,expected", CASES, ids=[c[0] for c in CASES])
def test_missing_api_keys_table(name, backends, jobs, env, expected):
    cfg = with_backends(**backends)
    assert wc.missing_api_keys(cfg, jobs, env) == expected
    if expected:
        with pytest.raises(wc.ConfigError) as err:
            wc.check_api_keys(cfg, jobs, env)
        for var, where in expected.items():
            assert var in str(err.value) and all(w in str(err.value) for w in where)
    else:
        wc.check_api_keys(cfg, jobs, env)


@pytest.mark.integration
def test_missing_key_refused_before_any_job_dry_run_plans_offline(tmp_path, monkeypatch, record):
    monkeypatch.delenv("BRAVE_API_KEY", raising=False)
    wd = make_workdir(tmp_path / "wd")
    (wd / "brave.yaml").write_text(yaml.safe_dump({"datasets": {"demo": {"search": {"backends": {"brave": BRAVE}}}}}))
    target = "results/demo/search/brave/chunk_00000.parquet"
    config = ["--configfile", str(wd / "config/config.yaml"), str(wd / "brave.yaml")]

    dry = snakemake(wd, target, "-n", "--cores", "1", *config, timeout=300)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    assert job_counts(dry.stdout)["search"] == 1 and "BRAVE_API_KEY" not in dry.stdout + dry.stderr

    r = snakemake(wd, target, "--cores", "1", *config, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "BRAVE_API_KEY" in out and "datasets.demo.search.backends.brave" in out, out[-3000:]
    # refused before the first job: nothing was run, written or locked
    assert "rule kg_dump" not in out and "Finished jobid" not in out and "start kg_dump" not in out
    assert not any((wd / d).exists() for d in ("results", "logs", "benchmarks", "resources/kg"))
    assert not (wd / ".snakemake/locks").exists() or not any((wd / ".snakemake/locks").iterdir())
    record("config: API key", "missing BRAVE_API_KEY for a selected backend", "refused", jobs_started=0)
