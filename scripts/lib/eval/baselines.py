"""Baseline models named by a tag (rule ``evaluate_baseline``): ``<open_clip model>__<pretrained tag>``, split into
clip_benchmark's model arguments, with the samples seen that the tag says (or the configured count).

The weights are fetched by open_clip itself from the model hubs (internet once); ``hf-hub:``/``local-dir:`` tags
are open_clip model names.
"""


def parse_baseline_tag(tag: str) -> tuple[str, str]:
    """``ViT-B-32__openai`` -> (``ViT-B-32``, ``openai``); ``ViT-B-16__hf-hub:imageomics/bioclip`` ->
    (``ViT-B-16``, ``hf-hub:imageomics/bioclip``)."""
    if "__" not in tag:
        raise ValueError(f"baseline tag {tag!r}: expected <open_clip model>__<pretrained tag>, e.g. ViT-B-32__openai")
    arch, pretrained = tag.split("__", 1)
    return arch, pretrained


MODEL_SCHEMAS = ("hf-hub:", "local-dir:")


def clip_benchmark_model(arch: str, pretrained: str) -> tuple[str, str]:
    """clip_benchmark's ``(--model, --pretrained)`` of a baseline. open_clip honours ``hf-hub:org/repo`` (and
    ``local-dir:``) only as the *model name* (config and weights then come from that repo through open_clip's own
    loading; ``pretrained`` is ignored), so such a tag moves into the model argument; an open_clip pretrained tag
    (``openai``, ``laion2b_s34b_b79k``) or a local checkpoint file stays ``pretrained`` of ``arch``."""
    if pretrained.startswith(MODEL_SCHEMAS):
        return pretrained, pretrained
    return arch, pretrained


def baseline_samples_seen(pretrained: str, explicit: int | None) -> int:
    """Samples seen of a baseline: ``explicit`` (``evaluation.baseline_samples_seen.<tag>``) if given, else parsed
    from the open_clip pretrained tag (``s128m``, ``s13b``, ``openai``), else 0."""
    if explicit:
        return int(explicit)
    from lib.train import macs

    seen = macs.samples_seen_from_tag(pretrained)
    return int(seen) if seen else 0
