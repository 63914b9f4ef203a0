"""CUB's "squash" evaluation variant: the whole image resized to the model's square input, no centre crop."""
import pytest
import yaml
from PIL import Image

from lib.eval import clip_benchmark_wrapped as cbw
from lib.eval import suite_evaluation as evaluate
from conftest import REPO

ARCH = "EntityNet-tiny-ctx32"  # 64 px input


def test_cub_runs_the_authors_three_variants(tmp_path):
    cub = yaml.safe_load((REPO / "config/config.yaml").read_text())["benchmarks"]["cub200"]
    vs = evaluate.variants(cub)
    # the authors' CUB tasks: centre crop with and without the ImageNet templates, squash without templates
    assert [(v["name"], v["templates"], v["resize"]) for v in vs] == [
        ("default+openai", "openai", None), ("default+none", "none", None), ("default+none+squash", "none", "squash")]
    # only the squash job carries the option, and the wrapper takes it out before clip_benchmark parses the rest
    argvs = {v["name"]: evaluate.variant_argv(cub, v, ARCH, "w.safetensors", tmp_path / "x.json", tmp_path, 8)
             for v in vs}
    assert [n for n, a in argvs.items() if cbw.RESIZE_FLAG in a] == ["default+none+squash"]
    rest, mode = cbw.split_resize(argvs["default+none+squash"])
    assert mode == "squash" and rest == argvs["default+none"] and cbw.RESIZE_FLAG not in rest
    assert cbw.split_resize(argvs["default+openai"]) == (argvs["default+openai"], None)
    with pytest.raises(ValueError, match="squash"):
        cbw.split_resize(["eval", cbw.RESIZE_FLAG, "stretch"])
    # benchmarks without resize_variants keep exactly their class-name x template variants
    inat = yaml.safe_load((REPO / "config/config.yaml").read_text())["benchmarks"]["inat2021"]
    assert [v["name"] for v in evaluate.variants(inat)] == ["latin+openai", "latin+none", "common+openai",
                                                            "common+none"]


def _left_edge_and_centre(transform) -> tuple[float, float]:
    """Red channel at the left edge and at the centre of a 192x64 image: left quarter red, the rest blue."""
    img = Image.new("RGB", (192, 64), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 48, 64))
    x = transform(img)
    assert tuple(x.shape) == (3, 64, 64)
    return float(x[0, :, 0].mean()), float(x[0, :, 32].mean())


def test_squash_keeps_the_whole_image_and_crop_does_not():
    import clip_benchmark.models as cm

    cbw.patch()
    try:
        cbw.set_resize_mode("squash")
        _, squash, _ = cm.load_clip("open_clip", ARCH, None, None, device="cpu")  # clip_benchmark's own entry point
        cbw.set_resize_mode(None)
        _, crop, _ = cm.load_clip("open_clip", ARCH, None, None, device="cpu")
    finally:
        cbw.set_resize_mode(None)
    s_edge, s_centre = _left_edge_and_centre(squash)
    c_edge, c_centre = _left_edge_and_centre(crop)
    # squash: the red quarter is still at the left edge; the centre crop (64 of 192 columns) cut it away
    assert s_edge > 1.0 and c_edge < -1.0
    assert s_centre < -1.0 and c_centre < -1.0
