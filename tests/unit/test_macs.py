"""Unit tests for scripts/lib/train/macs.py: analytic MACs against hand arithmetic, open_clip's profile and the paper."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.train import macs

# open_clip 3.3.0 model_configs/ViT-B-32.json, copied so the arithmetic tests do not depend on the installed package.
VIT_B_32 = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12},
}

# open_clip docs/model_profile.csv (mlfoundations/open_clip): image_gflops, text_gflops. Its "gflops" are 2 x MACs
# (docs/PAPER_NOTES.md §15: halving them is what makes the paper's totals match).
PROFILE_GFLOPS = {
    "ViT-B-32": (8.82, 5.96),
    "ViT-B-16": (35.13, 5.96),
    "ViT-L-14": (162.03, 13.3),
    "ViT-H-14": (334.59, 47.09),
}

# EntityNet B/32 recipe: 18 epochs over 32.7M images (docs/PAPER_NOTES.md §12).
ENTITYNET_SAMPLES_SEEN = 18 * 32.7e6


def test_vit_b32_image_tower_hand_computed():
    # 224/32 = 7 -> 49 patches + class token = 50 tokens, width 768, 12 layers, MLP 3072.
    patch_embed = 49 * (3 * 32 * 32) * 768  # 115,605,504
    per_layer = 3 * 50 * 768**2 + 50 * 768**2 + 2 * 50**2 * 768 + 2 * 50 * 768 * 3072  # 357,734,400
    projection = 768 * 512
    assert per_layer == 357_734_400
    expected = patch_embed + 12 * per_layer + projection
    assert macs.vit_image_macs(VIT_B_32["vision_cfg"], 512) == expected == 4_408_811_520


def test_vit_b32_text_tower_hand_computed_at_77_and_32():
    per_layer_77 = 4 * 77 * 512**2 + 2 * 77**2 * 512 + 2 * 77 * 512 * 2048
    assert macs.text_transformer_macs(VIT_B_32["text_cfg"], 512) == 12 * per_layer_77 + 512 * 512
    per_layer_32 = 4 * 32 * 512**2 + 2 * 32**2 * 512 + 2 * 32 * 512 * 2048
    assert macs.text_transformer_macs(VIT_B_32["text_cfg"], 512, 32) == 12 * per_layer_32 + 512 * 512


def test_vit_b32_forward_matches_paper_per_sample_gmacs():
    # docs/PAPER_NOTES.md §15: 7.39 GMACs = 4.41 image + 2.98 text at context 77. Our analytic count gives 4.4088 +
    # 2.9798 = 7.3886; the 0.02 % gap is the profile's rounding to two decimals of GFLOPs (LayerNorms, softmax, biases
    # and GELU are not counted by either).
    fwd = macs.forward_macs(VIT_B_32)
    assert fwd["total"] == fwd["image"] + fwd["text"]
    assert fwd["image"] / 1e9 == pytest.approx(4.41, rel=1e-3)
    assert fwd["text"] / 1e9 == pytest.approx(2.98, rel=1e-3)
    assert fwd["total"] / 1e9 == pytest.approx(7.39, rel=1e-3)


def test_text_context_defaults_to_77_even_for_a_context_32_config():
    ctx32 = json.loads(json.dumps(VIT_B_32))
    ctx32["text_cfg"]["context_length"] = 32
    assert macs.forward_macs(ctx32)["text"] == macs.forward_macs(VIT_B_32)["text"]
    own = macs.forward_macs(ctx32, text_context=None)["text"]
    assert own == macs.forward_macs(VIT_B_32, text_context=32)["text"]
    assert own < 0.45 * macs.forward_macs(VIT_B_32)["text"]


def test_training_macs_b32_matches_paper_table():
    # Ablation table (docs/PAPER_NOTES.md §14.1): 13.1e18 MACs for B/32 at 32.7M images x 18 epochs.
    total = macs.training_macs(VIT_B_32, ENTITYNET_SAMPLES_SEEN, count="matmul")
    assert total == pytest.approx(3 * ENTITYNET_SAMPLES_SEEN * macs.forward_macs(VIT_B_32)["total"])
    assert total / 1e18 == pytest.approx(13.05, abs=0.005)
    assert macs.training_macs(VIT_B_32, ENTITYNET_SAMPLES_SEEN) / 1e18 == pytest.approx(13.1, rel=0.005)


# open_clip 3.3.0 model_configs/ViT-B-16.json (same text tower as B/32).
VIT_B_16 = {**VIT_B_32, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16}}


@pytest.mark.parametrize("cfg, expected", [(VIT_B_32, 13.14), (VIT_B_16, 35.95)])
def test_authors_count_reproduces_their_calculator_for_the_paper_recipe(cfg, expected):
    # The authors' mac_calculator at the paper's recipe (18 x 32.7M samples, global batch 8192, text at context 77).
    total = macs.training_macs(cfg, ENTITYNET_SAMPLES_SEEN, count="authors", batch_size=8192)
    assert total / 1e18 == pytest.approx(expected, rel=0.005)
    assert macs.training_macs(cfg, ENTITYNET_SAMPLES_SEEN) == total  # authors at 8192 is the default


def test_authors_count_hand_computed_on_a_small_model():
    # 64x64 image, 32 px patches -> 4 patches (+ class token = 5), width 8, 1 layer, hidden 32;
    # text: context 5, width 4, 2 layers, hidden 16; embed 3; batch 2.
    cfg = {"embed_dim": 3,
           "vision_cfg": {"image_size": 64, "patch_size": 32, "width": 8, "layers": 1},
           "text_cfg": {"context_length": 5, "width": 4, "layers": 2}}
    b, e = 2, 3

    def ln(n, d):
        return 5 * n * b * d + 2 * n * b

    def block(n, d, h):
        qkv = n * (b * d * 3 * d + b * 3 * d)
        scores, scale, softmax, av = n * n * b * d, n * b * d, 2 * n * n * b, n * b * d
        out = n * (b * d * d + b * d)
        mean = n * b * d
        mlp = n * (b * d * h + b * h) + 12 * n * b * h + n * (b * h * d + b * d)
        return 2 * ln(n, d) + qkv + scores + scale + softmax + av + out + mean + mlp

    image = b * 4 * 32 * 32 * 3 * 8 + ln(4, 8) + block(5, 8, 32) + ln(5, 8)  # no image projection
    text = 2 * block(5, 4, 16) + ln(2, 4) + 5 * (b * 4 * e + b * e)      # final LN over `layers`; all tokens
    loss = 6 * b * b * e + 2 * b * e + 2 * b
    got = macs.authors_forward_macs(cfg, batch_size=b, text_context=None)
    assert got["image"] == pytest.approx(image / b)
    assert got["text"] == pytest.approx(text / b)
    assert got["loss"] == pytest.approx(loss / b)
    assert got["total"] == pytest.approx((image + text + loss) / b)


def test_authors_count_depends_on_the_global_batch_through_the_loss_only():
    small = macs.authors_forward_macs(VIT_B_32, batch_size=1024)
    big = macs.authors_forward_macs(VIT_B_32, batch_size=8192)
    assert small["image"] == pytest.approx(big["image"]) and small["text"] == pytest.approx(big["text"])
    # per-sample loss: 6 b e + 2 e + 2
    assert big["loss"] - small["loss"] == pytest.approx(6 * (8192 - 1024) * 512)
    # context 77 by default, also for a context-32 config; None counts the config's own context
    ctx32 = json.loads(json.dumps(VIT_B_32))
    ctx32["text_cfg"]["context_length"] = 32
    assert macs.authors_forward_macs(ctx32)["text"] == pytest.approx(big["text"])
    assert macs.authors_forward_macs(ctx32, text_context=None)["text"] < 0.45 * big["text"]


def test_count_switch_and_bad_values():
    authors = macs.training_macs(VIT_B_32, 1e6, count="authors")
    matmul = macs.training_macs(VIT_B_32, 1e6, count="matmul")
    assert authors != matmul
    assert matmul == pytest.approx(3e6 * macs.forward_macs(VIT_B_32)["total"])
    with pytest.raises(ValueError, match="unknown MAC count"):
        macs.training_macs(VIT_B_32, 1e6, count="flops")
    with pytest.raises(ValueError, match="batch_size"):
        macs.authors_forward_macs(VIT_B_32, batch_size=0)
    with pytest.raises(ValueError, match="timm"):
        macs.authors_forward_macs({"embed_dim": 512, "vision_cfg": {"timm_model_name": "x"}, "text_cfg": {}})


@pytest.mark.parametrize("name", sorted(PROFILE_GFLOPS))
def test_builtin_configs_match_open_clip_profile(name):
    cfg = macs.load_model_config(name)
    fwd = macs.forward_macs(cfg)
    image_gflops, text_gflops = PROFILE_GFLOPS[name]
    assert 2 * fwd["image"] / 1e9 == pytest.approx(image_gflops, rel=2e-3)
    assert 2 * fwd["text"] / 1e9 == pytest.approx(text_gflops, rel=2e-3)


def test_training_macs_b16_and_baselines_match_fig1():
    b16 = macs.load_model_config("ViT-B-16")
    # Fig. 1 reads EntityNet B-16 at ~36e18 (assumed 18 epochs, docs/PAPER_NOTES.md §15).
    assert macs.training_macs(b16, ENTITYNET_SAMPLES_SEEN, count="matmul") / 1e18 == pytest.approx(36.0, rel=0.02)
    # DataComp-L B-16 at 1.28B samples: ~78.9e18 (derived, docs/PAPER_NOTES.md §15), Fig. 1 reads ~78.
    assert macs.training_macs(b16, 1.28e9, count="matmul") / 1e18 == pytest.approx(78.9, rel=0.01)
    # OpenAI B-32 at 12.8B samples: 284e18 (derived, docs/PAPER_NOTES.md §15).
    assert macs.training_macs(VIT_B_32, macs.OPENAI_SAMPLES_SEEN, count="matmul") / 1e18 == pytest.approx(284, rel=0.01)


def test_mlp_ratio_and_embed_cls_are_honoured():
    cfg = json.loads(json.dumps(VIT_B_32))
    cfg["vision_cfg"]["mlp_ratio"] = 2.0
    cut = macs.forward_macs(VIT_B_32)["image"] - macs.forward_macs(cfg)["image"]
    assert cut == 12 * 2 * 50 * 768 * (3072 - 1536)
    cfg["text_cfg"]["embed_cls"] = True
    assert macs.forward_macs(cfg)["text"] == macs.forward_macs(VIT_B_32, text_context=78)["text"]


def test_rectangular_image_and_patch_sizes():
    cfg = {"image_size": [224, 448], "patch_size": [32, 32], "width": 64, "layers": 1, "mlp_ratio": 4}
    n = 7 * 14
    expected = n * 3 * 32 * 32 * 64 + macs.transformer_layer_macs(n + 1, 64, 4) + 64 * 8
    assert macs.vit_image_macs(cfg, 8) == expected


@pytest.mark.parametrize(
    "model_cfg, message",
    [
        ({"embed_dim": 512, "vision_cfg": {"timm_model_name": "vit_base_patch16_siglip_224"}, "text_cfg": {}}, "timm"),
        ({"embed_dim": 1024, "vision_cfg": {"layers": [3, 4, 6, 3], "width": 64}, "text_cfg": {}}, "ResNet"),
        ({"embed_dim": 512, "vision_cfg": {}, "text_cfg": {"hf_model_name": "xlm-roberta-base"}}, "Hugging Face"),
        ({"embed_dim": 512, "vision_cfg": {"attentional_pool": True}, "text_cfg": {}}, "attentional"),
        ({"vision_cfg": {}, "text_cfg": {}}, "embed_dim"),
        ({"embed_dim": 512, "vision_cfg": {"image_size": 16, "patch_size": 32}, "text_cfg": {}}, "smaller"),
    ],
)
def test_unsupported_or_bad_configs_raise(model_cfg, message):
    with pytest.raises(ValueError, match=message):
        macs.forward_macs(model_cfg)


def test_bad_samples_seen_raises():
    with pytest.raises(ValueError, match="samples_seen"):
        macs.training_macs(VIT_B_32, -1)
    with pytest.raises(ValueError, match="samples_seen"):
        macs.training_macs(VIT_B_32, float("nan"))


def test_unknown_model_name_raises():
    with pytest.raises(ValueError, match="no model config named"):
        macs.load_model_config("ViT-Nonexistent-99")


def test_builtin_config_read_equals_the_shipped_json():
    path = macs._builtin_config_path("ViT-B-32")
    assert path is not None and path.name == "ViT-B-32.json"
    assert macs.load_model_config("ViT-B-32") == json.loads(Path(path).read_text())
    assert macs.load_model_config("ViT-B-32") == VIT_B_32


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("openai", 12.8e9),
        ("datacomp_m_s128m_b4k", 128e6),
        ("datacomp_l_s1b_b8k", 1e9),
        ("datacomp_xl_s13b_b90k", 13e9),
        ("laion2b_s34b_b79k", 34e9),
        ("dfn5b", None),
        ("metaclip_fullcc", None),
    ],
)
def test_samples_seen_from_tag(tag, expected):
    assert macs.samples_seen_from_tag(tag) == expected


def test_cli_prints_json():
    script = Path(macs.__file__)

    def run(*extra):
        return json.loads(subprocess.run(
            [sys.executable, str(script), "ViT-B-32", "--samples-seen", str(ENTITYNET_SAMPLES_SEEN), *extra],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout)

    result = run("--count", "matmul")
    assert result["total_gmacs"] == pytest.approx(7.3886, abs=1e-4)
    assert result["training_macs_1e18"] == pytest.approx(13.05, abs=0.01)
    result = run()
    assert result["count"] == "authors" and result["loss_gmacs"] == pytest.approx(0.0252, abs=1e-4)
    assert result["training_macs_1e18"] == pytest.approx(13.14, abs=0.01)


def test_evaluate_uses_the_mac_count_switch_and_global_batch():
    from lib.eval import suite_evaluation

    authors = suite_evaluation.model_macs("ViT-B-32", 588_600_000, 77, "authors", 8192)
    assert authors == pytest.approx(13.14, rel=0.005)
    assert suite_evaluation.model_macs("ViT-B-32", 588_600_000, 77, "matmul", 8192) == pytest.approx(13.05, abs=0.005)
    # a smaller global batch shrinks the loss term only
    small = suite_evaluation.model_macs("ViT-B-32", 588_600_000, 77, "authors", 16)
    assert small == pytest.approx(authors - 3 * 588_600_000 * 6 * (8192 - 16) * 512 / 1e18)


def test_workflow_gives_evaluate_the_mac_count_and_the_recipes_global_batch():
    """The evaluate rules pass `evaluation.mac_count` (default authors) and, for a trained model, the recipe's global
    batch (batch_size x gpus x nodes), which the authors' count divides its loss term by."""
    from conftest import REPO

    code = ("import json, sys, types; sys.path.insert(0, 'scripts'); import _helpers\n"
            "with _helpers.loaded_workflow() as w:\n"
            " p, b = w.get_rule('evaluate').params, w.get_rule('evaluate_baseline').params\n"
            " gb = lambda m, d: p.global_batch(types.SimpleNamespace(model=m, dataset=d))\n"
            " print(json.dumps([p.mac_count, b.mac_count, gb('vitb32', 'entitynet'), gb('tiny', 'demo'),"
            " gb('vitb32', 'rehearsal')]))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # vitb32: 1024 x 8 GPUs; tiny: 16 on CPU (one process); rehearsal: 8 x 2 CPU processes
    assert json.loads(r.stdout.strip().splitlines()[-1]) == ["authors", "authors", 8192, 16, 16]
