"""Analytic multiply-accumulate (MAC) counts for open_clip ViT image towers and text transformers.

The paper (docs/PAPER_NOTES.md §15) measures training cost as

    MACs = 3 x samples_seen x (image-tower forward MACs + text-tower forward MACs)

where the factor 3 is the usual "forward + backward (= two forwards)" rule of thumb, and the text tower is counted
at context 77 "for fair comparison" even for models trained at context 32.

What is counted per sample (one image, one caption), matching what fvcore-style profilers count for open_clip's
`docs/model_profile.csv` (whose `gflops` column is 2 x MACs):

image tower (ViT, class token always present in open_clip)
    patch embedding conv      n_patches x (3 x p_h x p_w) x width
    per layer, n = n_patches + 1 tokens, d = width, h = int(d x mlp_ratio)
        Q, K, V projections   3 x n x d^2
        attention scores      n^2 x d          (Q K^T over all heads together)
        weighted sum          n^2 x d          (softmax(QK^T) V)
        output projection     n x d^2
        MLP                   2 x n x d x h    (fc1 and fc2)
    final projection          d x embed_dim    (pooled class token only)

text tower (causal transformer), n = context tokens (+1 with `embed_cls`), same per-layer terms, plus the final
projection d x embed_dim of the pooled token. The token embedding is a table look-up and costs no MACs.

Not counted (they are O(n x d), well under 0.5 % of the total): LayerNorms, biases, GELU, softmax, residual adds,
positional embeddings, the logit scale and the similarity matrix. With these conventions the analytic numbers agree
with open_clip's profile (gflops / 2) to better than 0.1 % for ViT-B-32, B-16, L-14 and H-14 (see the unit tests).

Towers built from timm or Hugging Face models, ResNets and attentional poolers are not supported: they raise
`ValueError` rather than return a wrong number.

Two conventions (`evaluation.mac_count` in the workflow config; the `count` argument of `training_macs`):

``matmul``
    the matrix products above (what open_clip's profile counts).
``authors`` (default)
    the EntityNet authors' own analytic calculator, re-implemented term by term, which produced the paper's MAC
    numbers. It counts one whole batch of ``batch_size`` samples (the paper's global batch, 8192) and divides by
    it. Besides the matrix products it counts, per transformer block: two LayerNorms (5 n d + 2 n each), the
    biases of the QKV, output and MLP projections, the 1/sqrt(d) scaling of Q (n d), a softmax without the
    division (exp and sum: 2 n^2), a mean over the attention output (n d) and GELU at 12 operations per hidden
    unit. Its own conventions, kept as they are:

    * attention-weights x V is counted as n x d (not n^2 x d);
    * the MLP hidden size is width x mlp_ratio (no rounding);
    * image tower: the LayerNorm before the blocks covers the patch tokens only, the one after them all tokens;
      the image projection to the joint space is *not* counted;
    * text tower: the final LayerNorm is counted over `layers` (not context) positions, and the projection to the
      joint space (with bias) over every context position, not just the pooled token; `embed_cls` is ignored;
    * the contrastive loss of a batch b: 6 b^2 e + 2 b e + 2 b MACs (e = embed_dim), shared by its b samples.

    For ViT-B/32 at context 77 and batch 8192 this gives 7.44 GMACs per sample (4.418 image, 2.997 text, 0.025
    loss) instead of 7.39, i.e. 13.14e18 training MACs for 18 x 32.7M samples instead of 13.05e18; for ViT-B/16
    35.95e18 instead of 36.28e18 (the n x d attention-times-V term outweighs the extra small terms there).
"""

import argparse
import importlib.util
import json
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# open_clip 3.3.0 dataclass defaults (open_clip/model.py: CLIPVisionCfg, CLIPTextCfg); a config key that is absent
# takes the same default open_clip would use when building the model.
VISION_DEFAULTS: dict[str, Any] = {"layers": 12, "width": 768, "mlp_ratio": 4.0, "patch_size": 16, "image_size": 224}
TEXT_DEFAULTS: dict[str, Any] = {
    "context_length": 77,
    "width": 512,
    "layers": 12,
    "mlp_ratio": 4.0,
    "embed_cls": False,
    "proj_type": "linear",
}

#: Samples seen by OpenAI's CLIP models (32 epochs x 400M pairs = 12.8B; docs/PAPER_NOTES.md §14.3 and §15).
OPENAI_SAMPLES_SEEN = 12.8e9

#: Training-cost rule of thumb: one forward plus a backward costing two forwards.
TRAINING_FACTOR = 3


def _pair(value: Any, what: str) -> tuple[int, int]:
    """Return an (h, w) pair from an int or a 2-sequence; raise ValueError naming `what` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


def transformer_layer_macs(tokens: int, width: int, mlp_ratio: float = 4.0) -> int:
    """MACs of one pre-norm transformer block over `tokens` tokens of size `width`.

    QKV (3 n d^2) + attention scores (n^2 d) + weighted sum (n^2 d) + output projection (n d^2)
    + MLP (2 n d h, with h = int(d * mlp_ratio) as in open_clip).
    """
    n = _positive_int(tokens, "tokens")
    d = _positive_int(width, "width")
    if not (isinstance(mlp_ratio, (int, float)) and mlp_ratio > 0):
        raise ValueError(f"mlp_ratio must be a positive number, got {mlp_ratio!r}")
    hidden = int(d * mlp_ratio)
    attention_proj = 4 * n * d * d
    attention_mix = 2 * n * n * d
    mlp = 2 * n * d * hidden
    return attention_proj + attention_mix + mlp


def vit_image_macs(vision_cfg: Mapping[str, Any], embed_dim: int) -> int:
    """Forward MACs of an open_clip VisionTransformer image tower for one image.

    Args:
        vision_cfg: the `vision_cfg` dict of an open_clip model config (image_size, patch_size, width, layers,
            optional mlp_ratio); missing keys take open_clip's defaults.
        embed_dim: the joint embedding size (the final projection's output width).

    Raises:
        ValueError: for towers this calculator does not model (timm, ResNet, attentional pooling) or bad values.
    """
    g = _vision_geometry(vision_cfg)
    layers, width = g["layers"], g["width"]
    (img_h, img_w), (patch_h, patch_w) = g["image"], g["patch"]
    n_patches = (img_h // patch_h) * (img_w // patch_w)
    tokens = n_patches + 1  # class token
    patch_embed = n_patches * (3 * patch_h * patch_w) * width
    blocks = layers * transformer_layer_macs(tokens, width, g["mlp_ratio"])
    projection = width * _positive_int(embed_dim, "embed_dim")
    return patch_embed + blocks + projection


def text_transformer_macs(text_cfg: Mapping[str, Any], embed_dim: int, context_length: int | None = None) -> int:
    """Forward MACs of an open_clip TextTransformer for one caption.

    Args:
        text_cfg: the `text_cfg` dict of an open_clip model config; missing keys take open_clip's defaults.
        embed_dim: the joint embedding size.
        context_length: tokens to count; None uses the config's `context_length`. The token count is the full
            context (open_clip pads every caption to it).

    Raises:
        ValueError: for Hugging Face text towers, unknown projection types or bad values.
    """
    g = _text_geometry(text_cfg)
    cfg = {**TEXT_DEFAULTS, **text_cfg}
    ctx = g["context_length"] if context_length is None else context_length
    tokens = _positive_int(ctx, "text context_length") + (1 if cfg["embed_cls"] else 0)
    layers, width = g["layers"], g["width"]
    blocks = layers * transformer_layer_macs(tokens, width, cfg["mlp_ratio"])
    if cfg["proj_type"] == "none":
        projection = 0
    elif cfg["proj_type"] == "linear":
        projection = width * _positive_int(embed_dim, "embed_dim")
    else:
        raise ValueError(f"text_cfg.proj_type={cfg['proj_type']!r} is not supported (expected 'linear' or 'none')")
    return blocks + projection


def forward_macs(model_cfg: Mapping[str, Any], text_context: int | None = 77) -> dict[str, int]:
    """Per-sample forward MACs of a CLIP model: {"image": ..., "text": ..., "total": ...}.

    Args:
        model_cfg: open_clip model config `{"embed_dim", "vision_cfg", "text_cfg"}` (as returned by
            `open_clip.get_model_config(name)` or stored in a config JSON).
        text_context: text tokens to count. Default 77, the paper's "fair comparison" convention, also for models
            trained at context 32; None counts the config's own context_length.
    """
    if not isinstance(model_cfg, Mapping):
        raise ValueError(f"model_cfg must be a mapping, got {type(model_cfg).__name__}")
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise ValueError(f"model_cfg lacks required key(s) {missing}; keys present: {sorted(model_cfg)}")
    embed_dim = model_cfg["embed_dim"]
    image = vit_image_macs(model_cfg["vision_cfg"], embed_dim)
    text = text_transformer_macs(model_cfg["text_cfg"], embed_dim, text_context)
    return {"image": image, "text": text, "total": image + text}


# ----------------------------------------------------------------------------------------------------------------
# The authors' calculator (module docstring, "authors"). Every function counts one batch of `b` samples.

#: Global batch of the paper's recipe, at which the authors evaluated their calculator for every architecture.
AUTHORS_BATCH_SIZE = 8192

#: MAC-count conventions (`evaluation.mac_count`); the first is the default.
MAC_COUNTS = ("authors", "matmul")


def _authors_layer_norm(n: int, b: int, d: int) -> int:
    """Mean, variance, normalise, scale and shift: 5 per element, plus 2 per position."""
    return 5 * n * b * d + 2 * n * b


def _authors_linear(d_in: int, d_out: float, b: int) -> float:
    """A linear layer with bias over `b` vectors: b x d_in x d_out products plus b x d_out bias adds."""
    return b * d_in * d_out + b * d_out


def _authors_block(n: int, b: int, d: int, hidden: float) -> float:
    """One pre-norm transformer block over `n` tokens for `b` samples, heads folded into the width."""
    attention = (
        n * _authors_linear(d, 3 * d, b)  # QKV projection
        + n * n * b * d                   # Q K^T
        + n * b * d                       # Q scaled by 1/sqrt(d)
        + 2 * n * n * b                   # softmax: exp and sum (the division is not counted)
        + n * b * d                       # attention weights x V, counted as n x d
        + n * _authors_linear(d, d, b)    # output projection
        + n * b * d                       # mean over the attention output
    )
    mlp = n * _authors_linear(d, hidden, b) + 12 * n * b * hidden + n * _authors_linear(hidden, d, b)
    return 2 * _authors_layer_norm(n, b, d) + attention + mlp


def _authors_clip_loss(b: int, e: int) -> int:
    """Both logit matrices (scaled) and both cross-entropies of a batch, as the authors count them."""
    return 6 * b * b * e + 2 * b * e + 2 * b


def _tower_cfg(tower: Any, name: str, defaults: Mapping[str, Any], foreign_key: str, foreign_what: str,
               supported: str) -> dict[str, Any]:
    """A tower config with open_clip's defaults filled in, after the checks both towers share: a mapping, not a
    foreign (timm / Hugging Face) model, a positive ``mlp_ratio``."""
    if not isinstance(tower, Mapping):
        raise ValueError(f"{name} must be a mapping, got {type(tower).__name__}")
    if tower.get(foreign_key):
        raise ValueError(f"{name} uses {foreign_what} {tower[foreign_key]!r}; {supported}")
    cfg = {**defaults, **tower}
    if not (isinstance(cfg["mlp_ratio"], (int, float)) and cfg["mlp_ratio"] > 0):
        raise ValueError(f"mlp_ratio must be a positive number, got {cfg['mlp_ratio']!r}")
    return cfg


def _vision_geometry(vision_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Validated ViT geometry: layers, width, mlp_ratio, image (h, w), patch (h, w)."""
    cfg = _tower_cfg(vision_cfg, "vision_cfg", VISION_DEFAULTS, "timm_model_name", "timm model",
                     "only open_clip ViT towers are supported")
    if cfg.get("attentional_pool"):
        raise ValueError("vision_cfg uses an attentional pooler, which this MAC calculator does not model")
    if not isinstance(cfg["layers"], int) or isinstance(cfg["layers"], bool):
        raise ValueError(f"vision_cfg.layers={cfg['layers']!r} is not an int: ResNet towers are not supported")
    out = {"layers": _positive_int(cfg["layers"], "vision_cfg.layers"),
           "width": _positive_int(cfg["width"], "vision_cfg.width"), "mlp_ratio": cfg["mlp_ratio"],
           "image": _pair(cfg["image_size"], "vision_cfg.image_size"),
           "patch": _pair(cfg["patch_size"], "vision_cfg.patch_size")}
    if any(i < p for i, p in zip(out["image"], out["patch"])):
        raise ValueError(f"vision_cfg.image_size {cfg['image_size']!r} is smaller than patch_size {cfg['patch_size']!r}")
    return out


def _text_geometry(text_cfg: Mapping[str, Any]) -> dict[str, Any]:
    cfg = _tower_cfg(text_cfg, "text_cfg", TEXT_DEFAULTS, "hf_model_name", "Hugging Face model",
                     "only open_clip text transformers are supported")
    return {"layers": _positive_int(cfg["layers"], "text_cfg.layers"),
            "width": _positive_int(cfg["width"], "text_cfg.width"), "mlp_ratio": cfg["mlp_ratio"],
            "context_length": cfg["context_length"]}


def authors_forward_macs(model_cfg: Mapping[str, Any], batch_size: int = AUTHORS_BATCH_SIZE,
                         text_context: int | None = 77) -> dict[str, float]:
    """Per-sample forward MACs by the authors' calculator: {"image", "text", "loss", "total"}.

    Args:
        model_cfg: open_clip model config `{"embed_dim", "vision_cfg", "text_cfg"}`.
        batch_size: the global batch (the loss is a batch-level term, so the per-sample cost depends on it).
        text_context: text tokens counted (default 77, as the authors did "for fair comparison"); None counts the
            config's own context_length.
    """
    if not isinstance(model_cfg, Mapping):
        raise ValueError(f"model_cfg must be a mapping, got {type(model_cfg).__name__}")
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise ValueError(f"model_cfg lacks required key(s) {missing}; keys present: {sorted(model_cfg)}")
    e = _positive_int(model_cfg["embed_dim"], "embed_dim")
    b = _positive_int(batch_size, "batch_size")
    v = _vision_geometry(model_cfg["vision_cfg"])
    t = _text_geometry(model_cfg["text_cfg"])
    (img_h, img_w), (p_h, p_w) = v["image"], v["patch"]
    patches = ((img_h - p_h) // p_h + 1) * ((img_w - p_w) // p_w + 1)  # a stride-p, kernel-p convolution
    d = v["width"]
    image = (b * patches * p_h * p_w * 3 * d                          # patch embedding
             + _authors_layer_norm(patches, b, d)                     # before the blocks: patch tokens only
             + v["layers"] * _authors_block(patches + 1, b, d, d * v["mlp_ratio"])
             + _authors_layer_norm(patches + 1, b, d))                # after the blocks; no projection counted
    ctx = _positive_int(t["context_length"] if text_context is None else text_context, "text context_length")
    w = t["width"]
    text = (t["layers"] * _authors_block(ctx, b, w, w * t["mlp_ratio"])
            + _authors_layer_norm(t["layers"], b, w)                  # (sic) over `layers` positions
            + ctx * _authors_linear(w, e, b))                         # projection of every context position
    loss = _authors_clip_loss(b, e)
    per = {"image": image / b, "text": text / b, "loss": loss / b}
    per["total"] = (image + text + loss) / b
    return per


def per_sample_macs(model_cfg: Mapping[str, Any], count: str = "authors", text_context: int | None = 77,
                    batch_size: int | None = None) -> float:
    """Per-sample forward MACs under convention `count` (`authors` or `matmul`, module docstring).

    `batch_size` only matters for `authors` (None: the paper's 8192, :data:`AUTHORS_BATCH_SIZE`).
    """
    if count == "authors":
        return authors_forward_macs(model_cfg, AUTHORS_BATCH_SIZE if batch_size is None else batch_size,
                                    text_context)["total"]
    if count == "matmul":
        return float(forward_macs(model_cfg, text_context)["total"])
    raise ValueError(f"unknown MAC count {count!r}; expected one of {list(MAC_COUNTS)}")


def training_macs(model_cfg: Mapping[str, Any], samples_seen: float, text_context: int | None = 77,
                  count: str = "authors", batch_size: int | None = None) -> float:
    """Training cost in MACs: 3 x samples_seen x per-sample forward MACs (docs/PAPER_NOTES.md §15).

    Args:
        model_cfg: open_clip model config dict.
        samples_seen: image-text pairs processed over the whole run (epochs x dataset size).
        text_context: see `forward_macs`.
        count: `authors` (default: the authors' calculator, which made the paper's numbers) or `matmul`.
        batch_size: global batch for `authors` (None: 8192, the paper's).
    """
    if isinstance(samples_seen, bool) or not isinstance(samples_seen, (int, float)) or not math.isfinite(samples_seen):
        raise ValueError(f"samples_seen must be a finite number, got {samples_seen!r}")
    if samples_seen < 0:
        raise ValueError(f"samples_seen must be >= 0, got {samples_seen!r}")
    return float(TRAINING_FACTOR * float(samples_seen) * per_sample_macs(model_cfg, count, text_context, batch_size))


def _builtin_config_path(name: str) -> Path | None:
    """Path of open_clip's shipped `model_configs/<name>.json`, found without importing open_clip (and torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model_configs" / f"{name}.json"
        if candidate.is_file():
            return candidate
    return None


def load_model_config(name: str) -> dict[str, Any]:
    """Return the open_clip model config registered under `name`.

    A built-in name is read straight from open_clip's shipped `model_configs/<name>.json`, which is what
    `open_clip.get_model_config(name)` returns, without the ~6 s torch import. Other names (`local-dir:`, `hf-hub:`,
    configs added in this process with `open_clip.add_model_config`) go through `open_clip.get_model_config`.
    Raises ValueError for unknown names.
    """
    if "open_clip" not in sys.modules and re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        path = _builtin_config_path(name)
        if path is not None:
            with open(path, encoding="utf-8") as fh:
                return dict(json.load(fh))
    import open_clip  # imported lazily: the pure functions above do not need torch

    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ValueError(f"open_clip has no model config named {name!r} (see open_clip.list_models())")
    return dict(cfg)


_TAG_SAMPLES = re.compile(r"(?:^|_)s(\d+(?:\.\d+)?)([kmb])(?:_|$)", re.IGNORECASE)
_TAG_UNITS = {"k": 1e3, "m": 1e6, "b": 1e9}


def samples_seen_from_tag(pretrained: str) -> float | None:
    """Samples seen encoded in an open_clip pretrained tag, or None when the tag does not say.

    `openai` -> 12.8e9; tags with an `s<N><k|m|b>` field (e.g. `datacomp_m_s128m_b4k`, `datacomp_xl_s13b_b90k`,
    `laion2b_s34b_b79k`) -> N x unit. Note that open_clip rounds in these tags (`s13b` is 12.8B samples); the
    tag's own number is returned, so callers who need 12.8B should pass it explicitly.
    """
    tag = pretrained.strip()
    if tag.lower() == "openai":
        return OPENAI_SAMPLES_SEEN
    match = _TAG_SAMPLES.search(tag)
    if match is None:
        return None
    return float(match.group(1)) * _TAG_UNITS[match.group(2).lower()]


def main(argv: list[str] | None = None) -> int:
    """CLI: print forward and (optionally) training MACs for an open_clip model name or config JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="open_clip model name (e.g. ViT-B-32) or path to a model config JSON")
    parser.add_argument("--samples-seen", type=float, default=None, help="e.g. 588.6e6 (18 x 32.7M)")
    parser.add_argument("--text-context", type=int, default=77, help="text tokens counted (default 77)")
    parser.add_argument("--count", choices=MAC_COUNTS, default="authors", help="MAC convention (default authors)")
    parser.add_argument("--batch-size", type=int, default=AUTHORS_BATCH_SIZE,
                        help="global batch for the authors' count (default 8192)")
    args = parser.parse_args(argv)
    if args.model.endswith(".json"):
        with open(args.model, encoding="utf-8") as fh:
            cfg = json.load(fh)
        cfg = cfg.get("model_cfg", cfg)
    else:
        cfg = load_model_config(args.model)
    if args.count == "authors":
        fwd: Mapping[str, float] = authors_forward_macs(cfg, args.batch_size, args.text_context)
    else:
        fwd = forward_macs(cfg, args.text_context)
    out: dict[str, Any] = {"count": args.count}
    out.update({f"{k}_gmacs": round(v / 1e9, 4) for k, v in fwd.items()})
    if args.samples_seen is not None:
        total = training_macs(cfg, args.samples_seen, args.text_context, args.count, args.batch_size)
        out["training_macs_1e18"] = round(total / 1e18, 4)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    if "snakemake" not in globals():
        sys.exit(main())
