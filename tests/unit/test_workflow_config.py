"""Cross-checks of scripts/lib/common/workflow_config.py::check (config problems a JSON schema cannot express)."""
import copy
import json

import pytest
import yaml

from lib.common import workflow_config as wc
from conftest import REPO

CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


def with_side(side, model="vitb32", **recipe):
    cfg = copy.deepcopy(CONFIG)
    cfg["models"][model]["stored_short_side"] = side
    cfg["models"][model].update(recipe)
    return cfg


def test_shipped_config_passes_and_keeps_the_paper_storage():
    wc.check(CONFIG, REPO)
    assert all(m.get("stored_short_side") is None for m in CONFIG["models"].values())


def test_stored_short_side_keeping_the_crops_is_accepted():
    wc.check(with_side(384), REPO)
    wc.check(with_side(374), REPO)  # the exact minimum for 224 px, scale 0.4, ratio 0.9-1.111
    wc.check(with_side(None), REPO)


@pytest.mark.parametrize("side", [300, 256, 373])
def test_stored_short_side_upscaling_crops_is_refused(side):
    with pytest.raises(wc.ConfigError) as e:
        wc.check(with_side(side), REPO)
    msg = str(e.value)
    assert "models.vitb32.stored_short_side" in msg and "374" in msg and "upscale" in msg


def test_minimum_follows_the_recipe_augmentation_and_arch():
    # a narrower crop range needs less storage: scale 0.8, ratio 1 -> ceil(224 / sqrt(0.8)) = 251
    wc.check(with_side(256, augmentation={"scale": [0.8, 1.0], "ratio": [1.0, 1.0]}), REPO)
    with pytest.raises(wc.ConfigError, match="251"):
        wc.check(with_side(250, augmentation={"scale": [0.8, 1.0], "ratio": [1.0, 1.0]}), REPO)
    # the tiny model takes 64-px inputs (config/models/EntityNet-tiny-ctx32.json): 107 px suffice
    assert json.loads((REPO / "config/models/EntityNet-tiny-ctx32.json").read_text())["vision_cfg"]["image_size"] == 64
    wc.check(with_side(107, model="tiny"), REPO)
    with pytest.raises(wc.ConfigError, match="models.tiny.stored_short_side: 106 px is below 107"):
        wc.check(with_side(106, model="tiny"), REPO)


def test_arch_without_a_bundled_config_falls_back_to_open_clip():
    assert wc.model_image_size("ViT-B-32-ctx32", REPO) == 224
    assert wc.model_image_size("ViT-L-14-336", REPO) == 336  # open_clip's own config
    with pytest.raises(wc.ConfigError, match="models.vitb32.arch.*NoSuchArch"):
        wc.check(with_side(384, arch="NoSuchArch"), REPO)


def test_stored_short_side_with_nothing_to_derive_is_refused():
    for side in (512, 600):
        with pytest.raises(wc.ConfigError, match="models.vitb32.stored_short_side.*nothing to derive"):
            wc.check(with_side(side), REPO)
    cfg = with_side(600)
    cfg["dataset_defaults"]["download"]["image_size"] = 1024
    wc.check(cfg, REPO)


def test_missing_benchmarks_stop_a_run_unless_skipped(tmp_path):
    """The paper suite without data: the onstart check names every benchmark, its root key and the opt-out."""
    cfg = copy.deepcopy(CONFIG)
    with pytest.raises(wc.ConfigError) as e:
        wc.check_benchmarks_present(cfg, ["paper"], base=tmp_path)
    msg = str(e.value)
    assert "imagenet1k (benchmarks.imagenet1k.root = 'data/benchmarks/imagenet1k')" in msg and "xm3600" in msg
    assert "evaluation.skip" in msg and "image-net.org" in msg
    (tmp_path / "data/benchmarks/imagenet1k").mkdir(parents=True)
    cfg["evaluation"]["skip"] = [b for b in cfg["evaluation"]["suites"]["paper"] if b != "imagenet1k"]
    wc.check_benchmarks_present(cfg, ["paper"], base=tmp_path)  # the one not skipped is on disk
    wc.check_benchmarks_present(cfg, ["demo"], built_by_rules=["resources/eval/demo_heldout"], base=tmp_path)
    cfg["evaluation"]["skip"] = ["imagenet1kk"]
    with pytest.raises(wc.ConfigError, match="evaluation.skip: 'imagenet1kk' is not in benchmarks.*did you mean"):
        wc.check(cfg, REPO)


def test_llm_mode_needs_a_key_variable_for_a_remote_api():
    """A remote OpenAI-compatible API without llm.api_key_env would fail at the first KG job with a 401."""
    cfg = copy.deepcopy(CONFIG)
    cfg["datasets"]["demo"]["attributes"] = {"mode": "llm"}
    cfg["datasets"]["demo"]["llm"] = {"base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini"}
    with pytest.raises(wc.ConfigError, match=r"datasets.demo.llm.api_key_env: required when datasets.demo."
                                             r"attributes.mode is llm.*'https://api.openai.com/v1'"):
        wc.check(cfg, REPO)
    cfg["datasets"]["demo"]["llm"]["api_key_env"] = "OPENAI_API_KEY"
    wc.check(cfg, REPO)
    # a keyless server on this machine (vLLM) needs no key variable
    cfg["datasets"]["demo"]["llm"] = {"base_url": "http://127.0.0.1:8000/v1", "model": "qwen"}
    wc.check(cfg, REPO)
    cfg["datasets"]["demo"]["llm"] = {"base_url": "http://127.0.0.1:8000/v1", "model": None}
    with pytest.raises(wc.ConfigError, match="datasets.demo.llm.model: required"):
        wc.check(cfg, REPO)


def test_wordnet_kind_without_a_wordnet_dir_is_refused():
    cfg = copy.deepcopy(CONFIG)
    cfg["datasets"]["demo"]["queries"] = {"kinds": ["wordnet-noun-living"]}
    with pytest.raises(wc.ConfigError, match=r"datasets.demo.queries.kinds: 'wordnet-noun-living' needs "
                                             r"datasets.demo.wordnet.dir"):
        wc.check(cfg, REPO)
    cfg["datasets"]["demo"]["wordnet"] = {"dir": "/usr/share/wordnet"}
    wc.check(cfg, REPO)
    # the defaults' kind list (all kinds) stays valid without WordNet: that kind then yields nothing
    assert "wordnet-noun-living" in wc.dataset_config(CONFIG, "demo")["queries"]["kinds"]
    assert not wc.dataset_config(CONFIG, "demo")["wordnet"]["dir"]


def test_unknown_clip_benchmark_dataset_is_refused():
    names, prefixes = wc.clip_benchmark_names()
    assert {"imagenet1k", "crossmodal3600", "flickr30k"} <= names and "wds/" in prefixes
    cfg = copy.deepcopy(CONFIG)
    cfg["benchmarks"]["cub200"]["dataset"] = "imagenet1kk"
    with pytest.raises(wc.ConfigError, match=r"benchmarks.cub200.dataset: 'imagenet1kk' is not a clip_benchmark "
                                             r"dataset \(did you mean 'imagenet1k'"):
        wc.check(cfg, REPO)
    cfg["benchmarks"]["cub200"]["dataset"] = "wds/any_local_folder"
    wc.check(cfg, REPO)
