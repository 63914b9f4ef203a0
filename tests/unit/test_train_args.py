"""The paper's recipe -> open_clip_train flags; launchers; ablation names."""
import pytest
import yaml

import train
import workflow_config as wc
from conftest import REPO

CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


def flag(args, name):
    return args[args.index(name) + 1]


def test_vitb32_recipe_matches_paper():
    r = wc.model_recipe(CONFIG, "vitb32")
    args = train.build_train_args(r, "s/{00000..02047}.tar", None, 0, "logs", "cands.parquet", gpus=8)
    assert flag(args, "--batch-size") == "1024" and flag(args, "--epochs") == "18"
    assert flag(args, "--train-num-samples") == "32700000"  # 588.6M samples seen / 18 epochs
    assert flag(args, "--warmup") == "7984"  # 2 x ceil(32.7M / 8192): docs/PAPER_NOTES.md §12
    assert (flag(args, "--lr"), flag(args, "--beta2"), flag(args, "--eps"), flag(args, "--wd")) == (
        "0.0005", "0.98", "1e-08", "0.2")
    assert flag(args, "--precision") == "amp_bf16" and "--local-loss" in args and "--gather-with-grad" in args
    assert "ratio=(0.9, 1.111)" in args and "scale=(0.4, 1.0)" in args and "use_timm=True" in args
    assert flag(args, "--model") == "ViT-B-32-ctx32" and flag(args, "--resume") == "latest"
    assert flag(args, "--entitynet-alt-text-chance") == "0.5" and "--device" not in args
    assert flag(args, "--entitynet-data-path") == "hybrid" and flag(args, "--entitynet-cpu-share") == "auto"


def test_multinode_world_size_counts_nodes():
    r = dict(wc.model_recipe(CONFIG, "vitb32"), nodes=2, gpus=4)
    args = train.build_train_args(r, "s.tar", None, 0, "logs", None, gpus=4)
    assert flag(args, "--warmup") == str(2 * -(-32_700_000 // (1024 * 8)))  # global batch = 1024 x 4 x 2
    cmd = train.launcher(4, 2)
    assert cmd[:4] == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1"] and cmd[5] == "4"
    assert train.launcher(4, 1)[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert train.launcher(0, 1)[-1].endswith("train_openclip.py")


def test_ablation_names():
    assert wc.model_recipe(CONFIG, "vitb32-alt0")["alt_text_chance"] == 0.0
    assert wc.model_recipe(CONFIG, "vitb32-alt100")["alt_text_chance"] == 1.0
    assert wc.model_recipe(CONFIG, "tiny")["alt_text_chance"] == 0.5
    for bad in ("vitb32-alt101", "gpt5", "vitb32-alt", "VITB32"):
        with pytest.raises(wc.ConfigError):
            wc.model_recipe(CONFIG, bad)


def test_tiny_runs_on_cpu():
    args = train.build_train_args(wc.model_recipe(CONFIG, "tiny"), "s.tar", "v.tar", 4, "logs", None, gpus=0)
    assert flag(args, "--device") == "cpu" and flag(args, "--val-num-samples") == "4"
    assert "--local-loss" not in args


def test_deterministic_switch():
    """models.<name>.deterministic reaches the wrapper, which turns on torch's switches and fixes the hybrid share."""
    import torch

    import train_openclip

    rec = dict(wc.model_recipe(CONFIG, "vitb32"), deterministic=True)
    args = train.build_train_args(rec, "s.tar", None, 0, "logs", None, gpus=8)
    ours, rest = train_openclip.split_args(args)
    assert ours.entitynet_deterministic and "--entitynet-deterministic" not in rest
    assert "--entitynet-deterministic" not in train.build_train_args(wc.model_recipe(CONFIG, "vitb32"), "s.tar", None,
                                                                     0, "logs", None, gpus=8)
    try:
        assert train_openclip.make_deterministic("auto") == 0.5
        assert train_openclip.make_deterministic(0.3) == 0.3
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(False)
