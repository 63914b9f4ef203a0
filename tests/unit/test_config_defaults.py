"""Defaults in one place: config/schema.yaml's ``default:`` values, filled by workflow_config; rules read the
resolved config through plain indexing."""
import copy
import re

import yaml

from conftest import REPO
from lib.common import workflow_config as wc

CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_validation_fills_the_top_level_defaults():
    cfg = copy.deepcopy(CONFIG)
    for key in ("skip", "batch_size", "mac_count", "baseline_suite"):
        cfg["evaluation"].pop(key)
    cfg.pop("paper"), cfg.pop("default_target"), cfg.pop("console")
    wc.validate_config(cfg)
    assert cfg["evaluation"]["skip"] == [] and cfg["evaluation"]["batch_size"] == 64
    assert cfg["evaluation"]["mac_count"] == "authors" and cfg["evaluation"]["baseline_suite"] == "paper"
    assert cfg["paper"] == {"dataset_labels": {}, "fig1_baselines": [], "baseline_labels": {}}
    assert cfg["default_target"] == {"dataset": "demo", "model": "tiny"} and cfg["console"] == "quiet"
    assert "subset" not in cfg["datasets"]["demo"]  # datasets are filled when resolved, not in place


def test_dataset_defaults_and_own_keys_win_over_the_schema():
    cfg = copy.deepcopy(CONFIG)
    cfg["dataset_defaults"]["dedup"] = {"hamming_threshold": 6}
    cfg["datasets"]["demo"]["dedup"] = {"decontam_threshold": 3}
    demo, ent = wc.dataset_config(cfg, "demo"), wc.dataset_config(cfg, "entitynet")
    assert demo["dedup"] == {"hamming_threshold": 6, "decontam_threshold": 3, "representative": "largest",
                             "eval_sets": None}
    assert ent["dedup"]["decontam_threshold"] == 8 and ent["subset"] is None
    assert wc.dataset_config(cfg, "livingthings")["subset"] == "living"
    assert demo["wordnet"] == {"dir": None, "max_synsets": None} and ent["wordnet"]["dir"] == "/usr/share/wordnet"


def test_recipes_take_the_schema_defaults_after_overrides_and_the_alt_suffix():
    tiny = wc.model_recipe(CONFIG, "tiny")
    assert (tiny["nodes"], tiny["seed"], tiny["lr_scheduler"], tiny["extra_args"]) == (1, 0, "cosine", [])
    assert wc.model_recipe(CONFIG, "tiny-alt0")["alt_text_chance"] == 0.0
    reh = wc.model_recipe(CONFIG, "vitb32", "rehearsal")
    assert reh["device"] == "cpu" and reh["data_path"] == "hybrid" and reh["augmentation"]["scale"] == [0.4, 1.0]
    cfg = copy.deepcopy(CONFIG)
    for key in ("data_path", "alt_text_chance", "augmentation"):
        cfg["models"]["vitb16"].pop(key)
    r = wc.model_recipe(cfg, "vitb16")
    assert r["data_path"] == "hybrid" and r["alt_text_chance"] == 0.5
    assert r["augmentation"] == {"scale": [0.4, 1.0], "ratio": [0.9, 1.111]}
    assert wc.model_recipe({"models": {"r": dict(cfg["models"]["vitb16"], gpus=0)}}, "r")["data_path"] == "stock"


def test_unknown_dedup_eval_set_is_a_config_error():
    cfg = copy.deepcopy(CONFIG)
    cfg["datasets"]["demo"]["dedup"] = {"eval_sets": ["demo_heldout", "nosuchbench"]}
    try:
        wc.check(cfg, REPO)
    except wc.ConfigError as e:
        assert "datasets.demo.dedup.eval_sets" in str(e) and "nosuchbench" in str(e)
    else:
        raise AssertionError("dedup.eval_sets naming no benchmark was accepted")


def test_rules_read_resolved_config_and_stay_short():
    """No config key read with a fallback (`.get("key"...)`) in the rules; every .smk file at most 141 lines."""
    for path in sorted((REPO / "rules").glob("*.smk")) + [REPO / "Snakefile"]:
        text = path.read_text()
        assert not re.search(r"\.get\(\s*[\"']", text), f"{path.name}: a .get(\"key\") of the config"
        assert len(text.splitlines()) <= 141, f"{path.name}: {len(text.splitlines())} lines"


def test_rule_entries_read_params_without_fallbacks():
    """No rule entry (scripts/*.py) invents a params value that config/schema.yaml already defines: no
    ``getattr(<params>, "key", <not None>)`` and no ``getattr(<params>, "key", ...) or <literal>``; an optional
    param a rule variant does not pass keeps ``getattr(p, "key", None)``."""
    params = r"(?:p|params|snakemake\.params)"
    literal = r"(?:\"[^\"]*\"|'[^']*'|-?\d[\d.]*|True|False|\[\]|\{\}|\(\))"
    with_default = re.compile(rf"getattr\(\s*{params}\s*,\s*[\"'](\w+)[\"']\s*,(?!\s*None\s*\))")
    or_literal = re.compile(rf"getattr\(\s*{params}\s*,\s*[\"'](\w+)[\"'][^()]*\)\s*or\s+{literal}")
    found = []
    for path in sorted((REPO / "scripts").glob("*.py")):
        text = path.read_text()
        found += [f"{path.name}: getattr(..., {m.group(1)!r}, <default>)" for m in with_default.finditer(text)]
        found += [f"{path.name}: getattr(..., {m.group(1)!r}) or <literal>" for m in or_literal.finditer(text)]
    assert not found, "params fallbacks (give the key a schema default and read it plainly): " + "; ".join(found)
