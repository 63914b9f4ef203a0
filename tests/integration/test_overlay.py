"""config/README.md's worked overlay (``demo_plus``): its own outputs, the demo's left alone; the KG catalog target."""
import re
import sys

import pytest
import yaml

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from workflow_helpers import REPO, job_counts, make_workdir, snakemake  # noqa: E402

from lib.common import workflow_config as wc  # noqa: E402


def readme_overlay() -> str:
    """The YAML block of the worked example, as documented (the test runs what a user would copy)."""
    text = (REPO / "config/README.md").read_text()
    block = re.search(r"```yaml\n(# demo_plus\.yaml.*?)```", text, re.S)
    assert block, "config/README.md lost its demo_plus example"
    return block.group(1)


def test_overlay_adds_one_root_and_keeps_the_rest():
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["datasets"].update(yaml.safe_load(readme_overlay())["datasets"])
    demo, plus = wc.dataset_config(cfg, "demo"), wc.dataset_config(cfg, "demo_plus")
    assert plus["roots"] == demo["roots"] + ["Q144"] and "extra_roots" not in plus
    assert plus["living_roots"] == demo["living_roots"] and plus["search"] == demo["search"]
    wc.check(cfg, REPO)
    # a list in an overlay replaces: roots: [Q144] alone is one root, which extra_roots avoids
    cfg["datasets"]["demo_plus"] = {"inherits": "demo", "roots": ["Q144"]}
    assert wc.dataset_config(cfg, "demo_plus")["roots"] == ["Q144"]
    cfg["datasets"]["demo_plus"] = {"inherits": "demo", "extra_roots": ["Q729"], "extra_living_roots": ["Q1390"]}
    again = wc.dataset_config(cfg, "demo_plus")
    assert again["roots"] == demo["roots"] and again["living_roots"] == demo["living_roots"] + ["Q1390"]


def test_overlay_plans_its_own_outputs_only(tmp_path):
    wd = make_workdir(tmp_path / "wd")
    (wd / "demo_plus.yaml").write_text(readme_overlay())
    r = snakemake(wd, "results/demo_plus/tiny/eval.csv", "-n", "--cores", "1", "--configfile",
                  str(wd / "config/config.yaml"), str(wd / "demo_plus.yaml"), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    outputs = [o.strip() for line in re.findall(r"^\s*output: (.*)$", r.stdout, re.M) for o in line.split(",")]
    assert any(o.startswith("results/demo_plus/") for o in outputs)
    assert "resources/kg/demo_plus/extract.nt.gz" in outputs
    # nothing of the demo's own is (re)built; the held-out eval set is shared and built by its own rule
    assert not [o for o in outputs if o.startswith(("results/demo/", "resources/kg/demo/"))], outputs
    counts = job_counts(r.stdout)
    assert counts["kg_entities"] == 1 and counts["train"] == 1


def test_kg_catalog_target_plans_from_the_entities(tmp_path):
    wd = make_workdir(tmp_path / "wd")
    r = snakemake(wd, "results/demo/kg_catalog.tsv", "-n", "--cores", "1", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert job_counts(r.stdout) == {"kg_dump": 1, "kg_entities": 1, "kg_catalog": 1}


def test_alt50_of_a_recipe_with_half_alt_text_is_the_recipe(tmp_path):
    """tiny-alt50 names tiny's own run (alt_text_chance 0.5): its eval.csv is copied, nothing is trained twice."""
    wd = make_workdir(tmp_path / "wd")
    r = snakemake(wd, "results/demo/tiny-alt50/eval.csv", "results/demo/tiny-alt0/eval.csv", "-n", "--cores", "1",
                  timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    counts = job_counts(r.stdout)
    assert counts["model_alias"] == 1 and counts["train"] == 2 and counts["evaluate"] == 2  # tiny and tiny-alt0
    assert "results/demo/tiny-alt50/model.safetensors" not in r.stdout
    assert "results/demo/tiny/eval.csv" in r.stdout


def test_model_aliases_follow_each_datasets_recipe():
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    aliases = wc.model_aliases(cfg)
    assert aliases["demo/tiny-alt50"] == "demo/tiny" and aliases["entitynet/vitb32-alt50"] == "entitynet/vitb32"
    assert "demo/tiny-alt0" not in aliases
    cfg["datasets"]["demo"]["model_overrides"] = {"tiny": {"alt_text_chance": 0.25}}
    aliases = wc.model_aliases(cfg)
    assert aliases["demo/tiny-alt25"] == "demo/tiny" and "demo/tiny-alt50" not in aliases
