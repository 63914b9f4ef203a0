"""The KG rules through the real Snakemake CLI on the demo extract: kg_dump -> kg_wordnet -> kg_entities ->
kg_attributes, with WordNet on and both LLM modes against the local chat-completions stand-in (not a real LLM
service); then a forced rerun answers every LLM request from the disk cache."""
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

from standins.llm_chat import LLMChatStandin  # noqa: E402
from workflow_helpers import make_workdir, snakemake  # noqa: E402

pytestmark = pytest.mark.integration
HAS_WORDNET = (Path("/usr/share/wordnet") / "data.noun").is_file()


@pytest.mark.skipif(not HAS_WORDNET, reason="no WordNet 3.0 at /usr/share/wordnet (apt-get install wordnet-base)")
def test_kg_rules_with_wordnet_and_llm_modes(tmp_path):
    wd = make_workdir(tmp_path / "wd")
    with LLMChatStandin(api_key="sk-standin-rules-0123456789") as server:
        overrides = {"datasets": {"demo": {
            "roots": ["Q39546", "Q2424752"], "living_roots": ["Q729"],
            "wordnet": {"dir": "/usr/share/wordnet", "max_synsets": 25},
            "natural_types": {"mode": "llm"},
            "attributes": {"mode": "llm", "living_limit": 3},
            "llm": {"base_url": f"{server.url}/v1", "model": "standin", "api_key_env": "STANDIN_LLM_KEY",
                    "workers": 4, "max_retries": 1}}}}
        cfg = tmp_path / "override.yaml"
        cfg.write_text(yaml.safe_dump(overrides))
        env = {"STANDIN_LLM_KEY": "sk-standin-rules-0123456789"}
        target = "results/demo/attributes.parquet"
        r = snakemake(wd, target, "--cores", "1", "--configfile", "config/config.yaml", str(cfg), env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        ents = pd.read_parquet(wd / "results/demo/entities.parquet")
        attrs = pd.read_parquet(wd / "results/demo/attributes.parquet")
        wn = ents[ents["source"] == "wordnet"]
        assert len(wn) == 25 and wn["qid"].str.startswith("wordnet:").all() and wn["is_living"].all()
        assert ents["qid"].is_unique and (ents["source"] == "wikidata").sum() > 50
        assert len(attrs) > 0 and (attrs["source"] == "llm").all()
        assert not attrs["qid"].str.startswith("wordnet:").any()  # WordNet rows get no attributes
        n = server.request_count("/v1/chat/completions")
        assert n > 50
        log = (wd / "logs/demo/kg_entities.log").read_text()
        assert "sk-standin-rules" not in log and "LLM:" in log
        # rerun both LLM rules: every answer from the cache
        r = snakemake(wd, target, "--cores", "1", "--forcerun", "kg_entities", "kg_attributes",
                      "--configfile", "config/config.yaml", str(cfg), env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert server.request_count("/v1/chat/completions") == n
        for rule in ("kg_entities", "kg_attributes"):  # the rules did run again, from the cache
            assert "LLM: {'requests': 0, 'cache_hits'" in (wd / f"logs/demo/{rule}.log").read_text()
        pd.testing.assert_frame_equal(ents, pd.read_parquet(wd / "results/demo/entities.parquet"))
        pd.testing.assert_frame_equal(attrs, pd.read_parquet(wd / "results/demo/attributes.parquet"))
