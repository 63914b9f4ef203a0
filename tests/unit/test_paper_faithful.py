"""config/paper_faithful.yaml: the documented overlay that turns on every paper behaviour (README "Deviations").

Bugs this catches: an overlay key that the schema refuses or that lands in the wrong place (silently ignored by a
deep merge into an unused branch), a paper switch that the overlay forgets, and an overlay that breaks the
flagship plan-time checks.
"""
from __future__ import annotations

import yaml

from lib.common import workflow_config as wc
from conftest import REPO

BASE = yaml.safe_load((REPO / "config/config.yaml").read_text())
OVERLAY = yaml.safe_load((REPO / "config/paper_faithful.yaml").read_text())


def merged() -> dict:
    return wc.deep_merge(BASE, OVERLAY)


def test_overlay_passes_the_schema_and_the_cross_checks():
    cfg = merged()
    wc.validate_config(cfg, REPO / "config" / "schema.yaml")
    wc.check(cfg, REPO)


def test_every_paper_switch_is_on_for_the_flagship_datasets():
    cfg = merged()
    ent = wc.dataset_config(cfg, "entitynet")
    assert ent["natural_types"]["mode"] == "llm" and ent["attributes"]["mode"] == "llm"
    assert ent["llm"]["model"] == "Qwen/Qwen2.5-7B-Instruct" and ent["llm"]["visual_filter"] is True
    assert ent["llm"]["living_filter"] is True
    assert ent["living_roots"] == ["Q729", "Q756"] and ent["living"]["include_fungi"] is False
    assert ent["queries"]["world_search_terms"] == "authors"
    assert ent["search"]["backends"]["serpapi_bing"]["or_terms"] == "natural_type"
    assert ent["search"]["backends"]["serpapi_bing"]["api_key_env"] == "SERPAPI_API_KEY"  # merged, not replaced
    assert wc.dataset_config(cfg, "livingthings")["kg_text_queries"] == "living"
    assert cfg["text_mix"]["synonym_guard"] is False and cfg["evaluation"]["mac_count"] == "authors"


def test_overlay_changes_only_what_it_names():
    """Without the LLM keys, the overlay would be the shipped defaults: every other switch it repeats must
    already be the shipped value (the defaults follow the paper)."""
    cfg, base = merged(), BASE
    for name in ("entitynet", "livingthings"):
        a, b = wc.dataset_config(cfg, name), wc.dataset_config(base, name)
        for key in ("living_roots", "queries", "living"):
            assert a[key] == b[key], (name, key)
        assert a["search"] == b["search"], name
    assert cfg["text_mix"] == base["text_mix"] and cfg["evaluation"] == base["evaluation"]
